"""Cleaning text people type before it is stored: the knowledge base's own rule, applied to
questions, corrections, reasons and notes too.

PostgreSQL refuses a NUL in a text column, and other control characters (terminal escapes,
backspaces) only ever do harm when the text is shown again in a terminal, a log or Slack. Line
breaks and tabs are kept: corrections are often several lines. Lone surrogates (what a terminal's
non-UTF-8 bytes become in Python) cannot be stored in any encoding and are dropped too.
"""

from __future__ import annotations

from retrieval.cleaning import clean_text

__all__ = ["clean_text"]
