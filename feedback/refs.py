"""Short references to the loop's objects, as people type and read them: `a12`, `c3`, `p7`, `g5`.

Every interface shows and accepts the same short forms, so a reference copied from Slack works in
the CLI and the shell. They are formatted and parsed here and nowhere else.

| prefix | object |
|---|---|
| `a` | an answer (and, in a proposal's provenance, that answer's vote) |
| `c` | a correction |
| `p` | a proposal |
| `g` | a golden question |
| `v` | a tuning version (`v0` is the base index) |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from feedback.errors import InvalidFeedback

RefKind = Literal["answer", "correction", "proposal", "golden", "version"]

PREFIX: dict[RefKind, str] = {
    "answer": "a",
    "correction": "c",
    "proposal": "p",
    "golden": "g",
    "version": "v",
}
KIND_OF: dict[str, RefKind] = {prefix: kind for kind, prefix in PREFIX.items()}
_REF = re.compile(r"\s*([acpgvACPGV])\s*#?\s*(\d{1,18})\s*")


@dataclass(frozen=True)
class Ref:
    kind: RefKind
    id: int

    def __str__(self) -> str:
        return f"{PREFIX[self.kind]}{self.id}"


def ref(kind: RefKind, number: int) -> str:
    """`ref("correction", 3)` → `c3`."""
    return f"{PREFIX[kind]}{int(number)}"


def answer_ref(number: int) -> str:
    return ref("answer", number)


def correction_ref(number: int) -> str:
    return ref("correction", number)


def proposal_ref(number: int) -> str:
    return ref("proposal", number)


def golden_ref(number: int) -> str:
    return ref("golden", number)


def version_ref(number: int) -> str:
    return ref("version", number)


def parse_ref(text: str, *allowed: RefKind) -> Ref:
    """`c12` → Ref("correction", 12); `#` and spaces are tolerated (`c #12`).

    `allowed` limits the kinds accepted (default: all); anything else is refused with a message
    that names what would have been accepted.
    """
    kinds = allowed or tuple(PREFIX)
    match = _REF.fullmatch(text or "")
    if match and KIND_OF[match.group(1).lower()] in kinds:
        return Ref(KIND_OF[match.group(1).lower()], int(match.group(2)))
    wanted = " or ".join(f"{PREFIX[k]}<number> for a {k}" for k in kinds)
    raise InvalidFeedback(f"{(text or '').strip()!r} is not a reference here: use {wanted}")


def try_parse_ref(text: str, *allowed: RefKind) -> Ref | None:
    """Like `parse_ref`, None instead of an error (for provenance lists that mix kinds)."""
    try:
        return parse_ref(text, *allowed)
    except InvalidFeedback:
        return None
