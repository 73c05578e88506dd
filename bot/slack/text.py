"""Making user and document text safe for Slack, and short enough for its limits.

Slack treats `<...>` as mentions and links and `&` as the start of an entity; unescaped, a
document saying `<!channel>` would make the bot ping everyone. Everything that did not come
from our own templates goes through `escape` before it reaches a block.
"""

from __future__ import annotations

from urllib.parse import quote

# Slack's documented limits (characters); exceeding them gets the whole message rejected.
SECTION_TEXT_LIMIT = 3000
CONTEXT_TEXT_LIMIT = 2000
MESSAGE_TEXT_LIMIT = 40000
MAX_BLOCKS = 50
MAX_CONTEXT_ELEMENTS = 10
PLAIN_TEXT_LIMIT = 75  # button labels and modal titles are shorter still (see callers)
MODAL_TITLE_LIMIT = 24
ELLIPSIS = "…"


def escape(text: object) -> str:
    """Slack's three control characters as entities; nothing else is touched."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def trim(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary and marked with an ellipsis.

    Escaping lengthens text, so callers trim *after* escaping; an entity cut in half would
    render as garbage, so a trailing partial `&...;` is dropped as well.
    """
    if len(text) <= limit:
        return text
    cut = text[: max(limit - len(ELLIPSIS), 0)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    space = cut.rfind(" ")
    if space > len(cut) * 0.8:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def safe(text: object, limit: int) -> str:
    """Escaped, then trimmed to `limit`."""
    return trim(escape(text), limit)


def link(url: str, label: str) -> str:
    """A mrkdwn link when `url` is a web address, else the escaped label with the location.

    `|` and `>` inside the URL would end the link early (a forged link), so they are
    percent-encoded; the label is escaped like any other text.
    """
    label_text = escape(label).replace("|", "¦")
    if url.startswith(("http://", "https://")):
        target = quote(url, safe=":/?#[]@!$&'()*+,;=%~.-_")
        target = target.replace("&", "&amp;")
        return f"<{target}|{label_text}>"
    return f"{label_text} ({escape(url)})" if url else label_text


def plain(text: object, limit: int = PLAIN_TEXT_LIMIT) -> dict[str, object]:
    """A plain_text object (Slack does not parse mentions in plain_text, but limits its size)."""
    return {"type": "plain_text", "text": trim(str(text), limit) or " ", "emoji": True}


def mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}
