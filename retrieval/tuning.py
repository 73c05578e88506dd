"""The ranking hook: how an active tuning version changes what retrieval returns.

Retrieval calls a `Tuning` at three points: on the question (a tuned query encoder or a learned
adapter gives the vector to search with), on the
candidate set (documents and passages that feedback made retrievable for similar questions),
and on the ranked list (query-aware reweighting). The store knows nothing of any of this, so
learned behaviour can change, be versioned and be rolled back without touching the index.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from retrieval.types import Hit


@runtime_checkable
class Tuning(Protocol):
    version: int | None

    def search_query(self, question: str, query: np.ndarray) -> np.ndarray:
        """The vector used to search the store (unit length); `query` is the base model's vector
        of `question`, which every other hook also receives."""

    def extra_doc_ids(self, query: np.ndarray) -> list[str]:
        """Stored documents to consider even if plain search did not find them."""

    def extra_hits(self, query: np.ndarray) -> list[Hit]:
        """Passages that live in the tuning itself (corrected answer text), as candidates."""

    def rerank(self, query: np.ndarray, hits: list[Hit]) -> list[Hit]:
        """Adjusted scores, best first. `query` is the raw (untransformed) question vector."""


class NoTuning:
    """The base index as it is: what an empty tuning version, or `--strategy none`, means."""

    def __init__(self, version: int | None = None) -> None:
        self.version = version

    def search_query(self, question: str, query: np.ndarray) -> np.ndarray:
        return query

    def extra_doc_ids(self, query: np.ndarray) -> list[str]:
        return []

    def extra_hits(self, query: np.ndarray) -> list[Hit]:
        return []

    def rerank(self, query: np.ndarray, hits: list[Hit]) -> list[Hit]:
        return sorted(hits, key=lambda h: h.score, reverse=True)
