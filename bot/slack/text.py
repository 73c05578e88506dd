"""Making user and document text safe for Slack, and short enough for its limits.

Slack treats `<...>` as mentions and links and `&` as the start of an entity; unescaped, a
document saying `<!channel>` would make the bot ping everyone. Everything that did not come
from our own templates goes through `escape` (mrkdwn), `plain` (plain_text) or `literal`
(rich_text and code) before it reaches a block, and each of them first `neutralise`s the
invisible characters that let text look like something else (right-to-left overrides that
reverse what follows, zero-width characters that hide inside words).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

# Slack's documented limits (characters); exceeding them gets the whole message rejected.
SECTION_TEXT_LIMIT = 3000
CONTEXT_TEXT_LIMIT = 2000
MESSAGE_TEXT_LIMIT = 40000
MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_CONTEXT_ELEMENTS = 10
PLAIN_TEXT_LIMIT = 75  # button labels and modal titles are shorter still (see callers)
MODAL_TITLE_LIMIT = 24
ELLIPSIS = "…"

# Explicit bidi embeddings, overrides and isolates (the "Trojan Source" set): they reorder the
# text that follows, so "*Approved*" can be made to read backwards or a link to look harmless.
# Right-to-left scripts do not need them; the plain marks (LRM, RLM, ALM) are kept.
_BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Invisible characters that hide inside words: zero-width space, word joiner, invisible
# operators, BOM, Mongolian vowel separator, soft hyphen. ZWJ and ZWNJ are handled below.
_INVISIBLE = "\u200b\u2060\u2061\u2062\u2063\u2064\ufeff\u180e\u00ad"
_DROP = re.compile(f"[{_BIDI_CONTROLS}{_INVISIBLE}\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_JOINERS = re.compile("[\u200c\u200d]")
_EMOJI_TAIL = {"\ufe0f"} | {chr(c) for c in range(0x1F3FB, 0x1F400)}  # VS16, skin tones


def _is_emoji(char: str) -> bool:
    return unicodedata.category(char) == "So" or char in _EMOJI_TAIL


def _keep_joiner(text: str, at: int) -> bool:
    """ZWJ inside an emoji sequence (👩‍💻) and ZWNJ between letters of scripts that need it
    (Persian, Indic) are part of the text; anywhere else they only hide something."""
    if at == 0 or at + 1 >= len(text):
        return False
    before, after = text[at - 1], text[at + 1]
    if text[at] == "\u200d":
        return _is_emoji(before) and _is_emoji(after)
    return before.isalpha() and after.isalpha() and not (before.isascii() or after.isascii())


def neutralise(text: object) -> str:
    """The text without bidi overrides, zero-width characters and control characters.

    Newlines and tabs stay; `\\r\\n` and lone `\\r` become `\\n`. Everything the bot posts from
    users or documents goes through here (through `escape`, `plain`, `literal` and the
    Markdown renderer), so the rule lives in one place.
    """
    value = str(text).replace("\r\n", "\n").replace("\r", "\n")
    value = _DROP.sub("", value)
    if "\u200c" in value or "\u200d" in value:
        value = "".join(ch for i, ch in enumerate(value)
                        if not _JOINERS.match(ch) or _keep_joiner(value, i))
    return value


def escape(text: object) -> str:
    """Neutralised, then Slack's three control characters as entities; nothing else is touched."""
    return neutralise(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# `<!here>`, `<@U1>`, `<#C1>`: the openings of Slack's special syntax.
_SPECIAL_OPENING = re.compile(r"<(?=[!@#])")


def defang(text: str) -> str:
    """Slack's mention and link openings made inert where entities cannot be used.

    In code (Markdown code spans and fences), rich_text text elements and plain_text, `&lt;`
    would show literally, so `<` stays a character; only a `<` that opens Slack's special
    syntax (`<!here>`, `<@U1>`, `<#C1>`) becomes the look-alike `‹`, which Slack never parses,
    whatever a surface does with the text.
    """
    return _SPECIAL_OPENING.sub("‹", text)


def literal(text: object) -> str:
    """Text shown exactly as written (rich_text elements, table cells): neutralised and defanged."""
    return defang(neutralise(text))


def trim(text: str, limit: int, *, entities: bool = True) -> str:
    """At most `limit` characters, cut at a word boundary and marked with an ellipsis.

    Escaping lengthens text, so callers trim *after* escaping; an entity cut in half would
    render as garbage, so a trailing partial `&...;` is dropped as well (unless `entities` is
    false: text that holds no entities, such as rich_text).
    """
    if len(text) <= limit:
        return text
    cut = text[: max(limit - len(ELLIPSIS), 0)]
    amp = cut.rfind("&")
    if entities and amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    space = cut.rfind(" ")
    if space > len(cut) * 0.8:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def safe(text: object, limit: int) -> str:
    """Escaped, then trimmed to `limit`."""
    return trim(escape(text), limit)


def web_url(url: str) -> str | None:
    """A URL safe to link to: http(s) only, with `|`, `<`, `>`, quotes and spaces
    percent-encoded (they would end a link early or forge one); None for anything else."""
    url = neutralise(url).strip()
    if not url.lower().startswith(("http://", "https://")):
        return None
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~.-_")


def link(url: str, label: str) -> str:
    """A mrkdwn link when `url` is a web address, else the escaped label with the location.

    `|` and `>` inside the URL would end the link early (a forged link), so they are
    percent-encoded; the label is escaped like any other text.
    """
    label_text = escape(label).replace("|", "¦")
    target = web_url(url)
    if target:
        return f"<{target.replace('&', '&amp;')}|{label_text}>"
    return f"{label_text} ({escape(url)})" if url else label_text


def plain(text: object, limit: int = PLAIN_TEXT_LIMIT) -> dict[str, object]:
    """A plain_text object: Slack parses no mentions, links or formatting in it, so the text
    is only neutralised and defanged (entities would show literally), and trimmed."""
    return {"type": "plain_text", "text": trim(literal(text), limit, entities=False) or " ",
            "emoji": True}


def mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}
