"""Telling commands from questions, for every interface that takes both on one line.

The shell takes `/review`, `+1`, `correct: …` and questions; `/askloop` takes `stats`, `review`
and questions. A line that looks like a command but is none — `/frobnicate`, `+5`, `/aprove`,
`stat` — gets "unknown command" with the closest known one, and is never answered, so it never
becomes a recorded question that learning would then try to fix.

What looks like a command: a first word that starts with `/`, a vote-like token (`+`, `-`, `+5`),
a first word ending in `:` that is close to a command (`corect: …`), or a line of one word that
is a command's name without its slash or close to one (`stats`, `reveiw`). Everything else is a
question, one-word questions included (`kubernetes`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

_VOTE_LIKE = re.compile(r"^[+\-]\d*$")
CLOSE = 0.75  # difflib ratio from which a word is taken for a misspelt command


def _bare(name: str) -> str:
    return name.strip().lstrip("/").rstrip(":").casefold()


def closest_command(word: str, commands: Iterable[str]) -> str | None:
    """The command (as the interface spells it) closest to `word`, if any is close enough."""
    names = {_bare(c): c for c in commands if _bare(c)}
    key = _bare(word)
    if key in names:
        return names[key]
    match = difflib.get_close_matches(key, list(names), n=1, cutoff=CLOSE)
    return names[match[0]] if match else None


def unknown_command(text: str, commands: Iterable[str]) -> str | None:
    """None when `text` is a known command or a question; else the message to show instead of
    answering it: "unknown command '/aprove' — did you mean /approve?"."""
    words = text.split()
    if not words:
        return None
    known = list(commands)
    first = words[0]
    if first in known or (first.endswith(":") and first[:-1] in known):
        return None
    closest = closest_command(first, known)
    slash = first.startswith("/") and len(first) > 1
    vote = bool(_VOTE_LIKE.match(first))
    colon = first.endswith(":") and closest is not None
    alone = len(words) == 1 and closest is not None
    if not (slash or vote or colon or alone):
        return None
    if vote:
        votes = [c for c in known if _VOTE_LIKE.match(c) and c[0] == first[0]]
        closest = votes[0] if votes else None
    message = f"unknown command {first!r}"
    return message + (f" — did you mean {closest}?" if closest else "")


__all__ = ["closest_command", "unknown_command"]
