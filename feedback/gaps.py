"""Knowledge gaps: the questions people asked that the knowledge base could not answer.

A vote on an abstention ("I couldn't find a good match…") says nothing about the document that
happened to be closest; it says the knowledge base lacks something. A 👎 that nobody followed
with a correction says the same: the answer was wrong and nobody could point at a better
document. Neither may move a document (`feedback.store.training` leaves abstentions out), so
both come here instead. **The rule, in one place:** an answer is a *gap signal* when

* it was an abstention and someone voted on it (👍 "indeed, you don't know" or 👎 "I needed this"), or
* it got a 👎,

and no correction of it is pending or approved (a correction names the document that answers
it: that is a retrieval miss for learning to fix, not a gap). Votes of flagged users do not
count, as everywhere. `Reports.gap_signals` reads exactly these answers.

Signals are grouped by similarity of the questions, with the question vectors stored with each
answer (no model is loaded): a question joins the group whose mean direction it is closest to,
when that cosine reaches `similarity`, else it starts a group. Questions without a stored vector
(or with another model's) are grouped by their normalised text. Groups are ranked by how many
questions they hold, then by how recently they were asked: the first ones are the documents to
write next.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from feedback.records import GapSignal

DEFAULT_SIMILARITY = 0.7  # cosine (all-MiniLM) above which two questions ask for the same thing
DEFAULT_DAYS = 30
EXAMPLES = 3

_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class Gap:
    """One missing piece of the knowledge base: similar questions, and how often it was hit."""

    question: str  # the most typical question of the group
    questions: int  # answers in the group
    askers: int  # distinct people who asked
    down: int  # 👎 in force on those answers
    up: int  # 👍 in force (on abstentions: "right, you don't know")
    abstained: int  # answers that were abstentions
    last_asked: datetime
    examples: tuple[str, ...] = ()  # up to three other phrasings
    answer_ids: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "question": self.question, "questions": self.questions, "askers": self.askers, "down": self.down,
            "up": self.up, "abstained": self.abstained, "last_asked": self.last_asked.isoformat(),
            "examples": list(self.examples), "answer_ids": list(self.answer_ids),
        }


@dataclass(frozen=True)
class GapReport:
    gaps: list[Gap]
    days: int
    similarity: float
    questions: int = field(default=0)  # gap signals in the window, all groups together

    def as_dict(self) -> dict[str, object]:
        return {"days": self.days, "similarity": self.similarity, "questions": self.questions,
                "groups": len(self.gaps), "gaps": [g.as_dict() for g in self.gaps]}


def normalised(question: str) -> str:
    """The words of a question, lower-cased: what groups questions that have no vector."""
    return " ".join(_WORDS.findall(question.casefold()))


@dataclass
class _Group:
    members: list[GapSignal]
    total: np.ndarray | None = None  # sum of unit vectors (its direction is the group's mean)

    def direction(self) -> np.ndarray | None:
        if self.total is None:
            return None
        norm = float(np.linalg.norm(self.total))
        return self.total / norm if norm else None


def _unit(vector: np.ndarray | None) -> np.ndarray | None:
    if vector is None or vector.size == 0:
        return None
    norm = float(np.linalg.norm(vector))
    return vector.astype(np.float32) / norm if norm and np.isfinite(norm) else None


def group_gaps(signals: Sequence[GapSignal], *, similarity: float = DEFAULT_SIMILARITY,
               days: int = DEFAULT_DAYS) -> GapReport:
    """Group gap signals by question similarity (see the module's docstring)."""
    by_vector: dict[str, list[_Group]] = {}
    by_text: dict[str, _Group] = {}
    for signal in sorted(signals, key=lambda s: (s.asked_at, s.answer_id)):
        unit = _unit(signal.question_vector)
        if unit is None or not signal.vector_model:
            key = normalised(signal.question)
            by_text.setdefault(key, _Group([])).members.append(signal)
            continue
        groups = by_vector.setdefault(signal.vector_model, [])
        best, best_score = None, similarity
        for group in groups:
            direction = group.direction()
            if direction is None or direction.shape != unit.shape:
                continue
            score = float(direction @ unit)
            if score >= best_score:
                best, best_score = group, score
        if best is None:
            groups.append(_Group([signal], unit.copy()))
        else:
            best.members.append(signal)
            assert best.total is not None
            best.total = best.total + unit
    groups = [g for model in by_vector.values() for g in model] + list(by_text.values())
    gaps = [_summary(g) for g in groups if g.members]
    gaps.sort(key=lambda g: (-g.questions, -g.last_asked.timestamp(), g.question))
    return GapReport(gaps, days, similarity, sum(g.questions for g in gaps))


def _summary(group: _Group) -> Gap:
    members = group.members
    direction = group.direction()
    if direction is not None:
        def typicality(s: GapSignal) -> float:
            unit = _unit(s.question_vector)
            return float(direction @ unit) if unit is not None and unit.shape == direction.shape else -1.0

        typical = max(members, key=lambda s: (typicality(s), s.asked_at))
    else:
        typical = max(members, key=lambda s: s.asked_at)
    seen = {normalised(typical.question)}
    examples: list[str] = []
    for s in sorted(members, key=lambda s: s.asked_at, reverse=True):
        key = normalised(s.question)
        if key not in seen and len(examples) < EXAMPLES:
            seen.add(key)
            examples.append(s.question)
    return Gap(
        question=typical.question,
        questions=len(members),
        askers=len({s.asker for s in members}),
        down=sum(s.down for s in members),
        up=sum(s.up for s in members),
        abstained=sum(1 for s in members if s.abstained),
        last_asked=max(s.asked_at for s in members),
        examples=tuple(examples),
        answer_ids=tuple(s.answer_id for s in members),
    )


__all__ = ["DEFAULT_DAYS", "DEFAULT_SIMILARITY", "Gap", "GapReport", "group_gaps", "normalised"]
