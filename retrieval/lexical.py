"""Keyword (BM25) scores beside the vector search: the lexical half of hybrid retrieval.

A small embedding model places a question near others *about the same thing*; it is weaker at
telling apart neighbouring entries that differ by one word a person typed ("refund" vs "return",
"at risk" vs "at risk for severe disease"). BM25 scores exactly that. Search adds a bounded
keyword bonus to each candidate document's vector score (`KnowledgeBase.lexical_weight`), as
hybrid search does in other assistants, so the vector score still decides between documents
that match the question's words equally.

The index is rebuilt from the chunk store itself (its text and titles), so embedded and server
mode, and every replica, see the same index without a second store to keep in step. Ingest marks
each change with a new store generation; a search re-reads the generation at most every
`refresh_seconds` and rebuilds when it moved.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrieval.store import ChunkStore

# Lexical candidates per question: documents that match the words best but that the vector
# search did not return are fetched (with their vector score) and compete on the hybrid score.
LEXICAL_CANDIDATES = 10


def tokens(texts: list[str]) -> list[list[str]]:
    """Lower-cased, English stop words dropped, stemmed ("refunds" matches "refund")."""
    import bm25s

    return bm25s.tokenize(
        texts, stopwords="en", return_ids=False, show_progress=False, stemmer=_stemmer()
    )


_local = threading.local()


def _stemmer() -> Any:
    """One stemmer per thread: PyStemmer's objects must not be shared between threads."""
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


@dataclass(frozen=True)
class KeywordScores:
    """Per-document BM25 scores for one question, scaled so the best document scores 1."""

    by_doc: dict[str, float]

    def best(self, n: int) -> list[str]:
        return [d for d, _ in sorted(self.by_doc.items(), key=lambda item: -item[1])[:n]]


class LexicalIndex:
    """BM25 over every chunk's title and text; a document scores as its best chunk."""

    def __init__(self, entries: Iterable[tuple[str, str]]) -> None:
        import bm25s

        doc_ids: list[str] = []
        texts: list[str] = []
        for doc_id, text in entries:
            doc_ids.append(doc_id)
            texts.append(text)
        self.docs = sorted(set(doc_ids))
        position = {d: i for i, d in enumerate(self.docs)}
        self._chunk_doc = np.asarray([position[d] for d in doc_ids], dtype=np.int64)
        self._bm25 = bm25s.BM25()
        if texts:
            self._bm25.index(tokens(texts), show_progress=False)

    def __len__(self) -> int:
        return len(self._chunk_doc)

    def scores(self, question: str) -> KeywordScores:
        query = tokens([question])[0]
        if not query or not len(self._chunk_doc):
            return KeywordScores({})
        chunk_scores = np.asarray(self._bm25.get_scores(query), dtype=np.float32)
        doc_scores = np.zeros(len(self.docs), dtype=np.float32)
        np.maximum.at(doc_scores, self._chunk_doc, chunk_scores)
        top = float(doc_scores.max(initial=0.0))
        if top <= 0.0:
            return KeywordScores({})
        hit = np.flatnonzero(doc_scores > 0)
        return KeywordScores({self.docs[i]: float(doc_scores[i] / top) for i in hit})


class LexicalIndexCache:
    """The lexical index of one chunk store, rebuilt when ingest changed the store."""

    def __init__(self, store: ChunkStore, refresh_seconds: float = 5.0) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._generation: str | None = None
        self._index: LexicalIndex | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._checked = float("-inf")

    def index(self) -> LexicalIndex:
        with self._lock:
            now = time.monotonic()
            if self._index is not None and now - self._checked < self.refresh_seconds:
                return self._index
            generation = self.store.generation()
            if self._index is None or generation != self._generation:
                self._index = LexicalIndex(self.store.searchable_texts())
                self._generation = generation
            self._checked = now
            return self._index
