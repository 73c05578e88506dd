"""Validated feedback as *memories*: the knobs of learning, and the rules that turn votes and
approved corrections into weighted (question, document) memories and corrected passages, with
each user's and each document's influence bounded before anything is stored."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from feedback.encoder_tuning import EncoderTraining
from feedback.records import ShownDoc, TrainingFeedback
from retrieval.learned import PASSAGE_PREFIX, MemoryParams


@dataclass(frozen=True)
class LearningParams:
    """One global set of knobs (never fitted per data set); all visible in each proposal."""

    memory: MemoryParams = field(default_factory=MemoryParams)
    up_weight: float = 1.0  # 👍 on the top document
    down_weight: float = 1.0  # 👎 on the top document
    correction_weight: float = 3.0  # an approved correction's cited document or text
    user_cap: float = 30.0  # total |weight| of one user's memories
    doc_cap: float = 60.0  # total |weight| of one document's memories
    adapter_min_pairs: int = 200  # validated (question, document) pairs before an adapter is tried
    rejected_fix_factor: float = 0.25  # a 👎 whose proposed fix a moderator rejected is doubtful
    center_prior: int = 20  # the centre is shrunk toward 0 when few questions are remembered
    encoder: EncoderTraining = field(default_factory=EncoderTraining)  # the tuned query encoder
    # Check the memory settings on held-out folds of the team's own feedback, and move them
    # within fixed bounds when another setting is clearly better (`feedback.calibration`).
    calibrate: bool = True

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("memory", "encoder")}
        return data | {"memory": self.memory.as_dict(), "encoder": self.encoder.as_dict()}


@dataclass(frozen=True)
class Memory:
    """One piece of validated feedback, as retrieval will use it."""

    question: str
    doc_id: str
    weight: float
    origin: str  # "vote" | "correction"
    ref: str  # a12 (answer 12's vote) | c3 (correction 3)
    user: str


@dataclass(frozen=True)
class Passage:
    doc_id: str
    title: str
    text: str
    question: str
    correction_id: int
    source: str | None = None


def shrunk_centre(vectors: np.ndarray, prior: int) -> np.ndarray:
    """The remembered questions' mean, shrunk toward 0 while they are few (`prior`: how many
    questions weigh as much as the mean): what memories are centred on (`MemoryParams`)."""
    n = len(vectors)
    return np.asarray(vectors.mean(axis=0) * (n / (n + prior)), dtype=np.float32)


def top_document(shown: Sequence[ShownDoc | dict[str, Any]]) -> str | None:
    if not shown:
        return None
    first = min(shown, key=lambda s: s["rank"] if isinstance(s, dict) else s.rank)
    doc_id = first["doc_id"] if isinstance(first, dict) else first.doc_id
    return str(doc_id) if doc_id else None


def is_document_ref(ref: str | None) -> bool:
    return bool(ref) and "://" not in str(ref)


def collect_memories(
    feedback: TrainingFeedback,
    params: LearningParams,
    doubtful: set[tuple[int, str]] | frozenset[tuple[int, str]] = frozenset(),
) -> tuple[list[Memory], list[Passage], dict[str, int]]:
    """Votes and corrections → memories and passages, with the per-user and per-document caps.

    `doubtful`: (answer id, user) pairs whose 👎 came with a correction a moderator rejected;
    such a 👎 counts `rejected_fix_factor` of a normal one (at 0 it is set aside).
    Returns (memories, passages, counts of what was skipped or discounted and why).
    """
    skipped: dict[str, int] = defaultdict(int)
    memories: list[Memory] = []
    passages: list[Passage] = []
    for vote in feedback.votes:
        doc = top_document(vote.shown)
        if doc is None:
            skipped["vote on an answer that showed no document"] += 1
            continue
        if doc.startswith(PASSAGE_PREFIX):
            skipped["vote on a corrected passage (already learned)"] += 1
            continue
        base = params.up_weight if vote.value > 0 else -params.down_weight
        weight = base * min(1.0, max(0.0, float(vote.weight)))
        if vote.value < 0 and (vote.answer_id, vote.user) in doubtful:
            weight *= params.rejected_fix_factor
            if weight == 0:
                skipped["👎 set aside: its proposed fix was rejected"] += 1
                continue
            skipped["👎 discounted: its proposed fix was rejected"] += 1
        if weight == 0:
            skipped["vote with weight 0"] += 1
            continue
        memories.append(Memory(vote.question, doc, weight, "vote", f"a{vote.answer_id}", vote.user))
    for correction in feedback.corrections:
        ref = correction.doc_id or (correction.url if is_document_ref(correction.url) else None)
        if ref:
            memories.append(
                Memory(
                    correction.question,
                    str(ref),
                    params.correction_weight,
                    "correction",
                    f"c{correction.correction_id}",
                    correction.user,
                )
            )
            if correction.text and correction.text.strip():
                # the better text stays with the document it cites: served as that document's
                # passage for the questions this correction reaches (retrieval.learned annotations)
                passages.append(Passage(str(ref), "", correction.text.strip(), correction.question,
                                        correction.correction_id, correction.url))
        elif correction.text and correction.text.strip():
            doc_id = f"{PASSAGE_PREFIX}{correction.correction_id}"
            passages.append(
                Passage(
                    doc_id,
                    f"Correction #{correction.correction_id}",
                    correction.text.strip(),
                    correction.question,
                    correction.correction_id,
                    correction.url,
                )
            )
            memories.append(
                Memory(
                    correction.question,
                    doc_id,
                    params.correction_weight,
                    "correction",
                    f"c{correction.correction_id}",
                    correction.user,
                )
            )
        else:
            skipped["correction with neither document nor text"] += 1
    memories = _cap(memories, lambda m: m.user, params.user_cap)
    memories = _cap(memories, lambda m: m.doc_id, params.doc_cap)
    return memories, passages, dict(skipped)


def _cap(memories: list[Memory], key: Callable[[Memory], str], cap: float) -> list[Memory]:
    """Scale down every group whose total |weight| exceeds `cap` (keeps the group's shape)."""
    totals: dict[str, float] = defaultdict(float)
    for memory in memories:
        totals[key(memory)] += abs(memory.weight)
    out = []
    for memory in memories:
        total = totals[key(memory)]
        if total > cap:
            memory = replace(memory, weight=memory.weight * cap / total)
        out.append(memory)
    return out
