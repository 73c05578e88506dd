"""Cleaning text people type before it is stored.

PostgreSQL refuses a NUL in a text column, and other control characters (terminal escapes,
backspaces) only ever do harm when the text is shown again in a terminal, a log or Slack. Line
breaks and tabs are kept: corrections are often several lines. Lone surrogates (what a terminal's
non-UTF-8 bytes become in Python) cannot be stored in any encoding and are dropped too.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` without control characters (tabs and line breaks kept, `\\r\\n` → `\\n`)."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
