"""Text hygiene at the edges of the knowledge base: what may be stored, and what may be shown.

Documents arrive with bytes nobody meant as text: a NUL in a JSON string (`\\u0000`), in a text
file past its first 8 KiB, in a PDF's text layer; escape sequences; lone surrogates from a JSON
`\\ud800` escape. PostgreSQL refuses NUL in text columns and no encoder accepts a lone
surrogate, so such text would fail far from where it came in (recording an answer, a
correction). Everything retrieval stores is cleaned once, on load, by `clean_text` and
`clean_line`; nothing with a control character or a surrogate leaves retrieval.

Names that are identities (a file path is a document's id and tells `--prune` where the file
is) are kept as they are; `printable` makes them safe to show on a terminal, where an escape
sequence in a file name would otherwise recolour, move or rewrite what the person sees.
"""

from __future__ import annotations

import re

# C0 controls except tab and line feed, DEL, and the C1 controls. Vertical tab, form feed and
# NEL (U+0085) separate lines in the texts we see (PDF extraction, old word processors).
_CONTROL: dict[int, str | None] = {code: None for code in (*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROL.update({0x0B: "\n", 0x0C: "\n", 0x85: "\n"})
_SURROGATES = re.compile("[\ud800-\udfff]")
_UNCLEAN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SPACES = re.compile(r"\s+")

# What must not reach a terminal as is: control characters (escape sequences start with ESC or
# the C1 CSI), lone surrogates (undecodable bytes of a file name), and the bidirectional
# controls that make a name display in another order than it is ("Trojan Source").
_UNPRINTABLE = "\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNPRINTABLE_LINE = re.compile(f"[\t\n{_UNPRINTABLE}]")
_UNPRINTABLE_TEXT = re.compile(f"[{_UNPRINTABLE}]")


def clean_text(text: str) -> str:
    """`text` with Windows and old Mac line ends as `\\n`, vertical tab and form feed as line
    breaks, every other control character (NUL, ESC, DEL, C1) and every lone surrogate removed.
    Tabs and line breaks stay: they are layout (code blocks, tables, paragraphs)."""
    if not _UNCLEAN.search(text):  # the usual case, at the speed of a scan
        return text
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.translate(_CONTROL)
    return _SURROGATES.sub("", text)


def storable(text: str) -> str:
    """`text` without what no database stores: NUL and lone surrogates (for names, which keep
    their other characters to stay recognisable; `printable` shows them safely)."""
    return _UNSTORABLE.sub("", text) if _UNSTORABLE.search(text) else text


def has_surrogates(text: str) -> bool:
    """True for text made from bytes that were not UTF-8 (Python's surrogateescape)."""
    return _SURROGATES.search(text) is not None


def clean_line(text: str) -> str:
    """A one-line field (a title, an id, a URL): `clean_text`, with every run of whitespace,
    line breaks included, as one space."""
    return _SPACES.sub(" ", clean_text(text)).strip()


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, multiline: bool = False) -> str:
    """`text` safe to print on a terminal: control characters, lone surrogates and bidi
    controls shown as visible escapes (`\\x1b`, `\\u202e`), so a file called `a\\x1b[2Jb.md` is
    shown by that name instead of clearing the screen. `multiline` keeps tabs and line breaks
    (for answer text); names are shown on one line."""
    pattern = _UNPRINTABLE_TEXT if multiline else _UNPRINTABLE_LINE
    return pattern.sub(_escaped, text)
