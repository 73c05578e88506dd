"""Plain-data builders for learning tests: feedback records and an encoder with chosen vectors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np

from feedback.records import ShownDoc, TrainingCorrection, TrainingFeedback, TrainingVote
from retrieval.types import Hit

DIM = 8
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def unit(*values: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(values)] = values
    return v / np.linalg.norm(v)


class TableEncoder:
    """Encodes known texts to given vectors; anything else gets a fixed far-away vector."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return np.stack([self.table.get(t, unit(0, 0, 0, 0, 0, 0, 0, 1)) for t in texts])


class CountingEncoder(TableEncoder):
    """A TableEncoder that names its model as `Embedder` does, and remembers every text it encoded."""

    def __init__(self, table: dict[str, np.ndarray], model_id: str = f"table@{DIM}") -> None:
        super().__init__(table)
        self.model_id = model_id
        self.dimension = DIM
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded.extend(texts)
        return super().encode(texts)


def shown(*doc_ids: str) -> list[ShownDoc]:
    return [ShownDoc(i + 1, d, f"{d}-0", d.title(), f"{d}.md", 0.5, 0.5) for i, d in enumerate(doc_ids)]


def vote(
    answer_id: int, question: str, user: str, value: int, *docs: str, weight: float = 1.0,
    vector: np.ndarray | None = None, model: str | None = None,
) -> TrainingVote:
    """`vector`/`model`: the question vector stored with the answer, as the bot records it."""
    return TrainingVote(
        answer_id, question, user, user, value, weight, shown(*docs), NOW, question_vector=vector, vector_model=model
    )


def correction(
    correction_id: int, question: str, user: str, doc_id: str | None = None, text: str | None = None,
    answer_id: int | None = None,
) -> TrainingCorrection:
    return TrainingCorrection(
        correction_id, answer_id if answer_id is not None else 100 + correction_id, question, user,
        doc_id, None, text, NOW,
    )


def feedback(votes=(), corrections=()) -> TrainingFeedback:  # type: ignore[no-untyped-def]
    return TrainingFeedback(list(votes), list(corrections))


def hits(**scores: float) -> list[Hit]:
    return [Hit(d, d.title(), f"{d}.md", s, f"text of {d}", f"{d}-0", base_score=s) for d, s in scores.items()]
