"""Chunks and questions embedded compatibly: which vectors a store holds, and re-embedding it.

The collection records the `model_id` and backend that made its chunk vectors
(`ChunkStore.mark_embedding`). A process whose embedder makes other vectors:

* re-embeds every chunk when it ingests (`reembed`, with a log line and progress), so switching
  `ASKLOOP_EMBEDDING_BACKEND` or the model takes one `askloop ingest`;
* when it only searches, still answers if the difference is the precision of the same weights
  (int8 against exact vectors: cosine ≈ 0.995, retrieval metrics within noise — measured in
  docs/benchmarks.md), with a warning until the store is re-embedded; and refuses with a clear
  message if the store was embedded by another model, whose scores would mean nothing.

A store written before the record existed was embedded by the torch backend, the only one there
was: it counts as holding the exact vectors of the configured model.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from retrieval.chunk_vectors import embed_chunks, embedding_text
from retrieval.embeddings import Embedder, EmbeddingModelError, same_weights
from retrieval.store import ChunkStore

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]

# Chunks re-embedded (and written) per step: as many as `Ingestor.write` embeds per call.
REEMBED_BATCH = 512


class VectorMismatch(EmbeddingModelError):
    """The store's chunks were embedded by another model than the one configured."""


def recorded_embedding(store: ChunkStore, embedder: Embedder) -> tuple[str, str]:
    """(`model_id`, backend) of the store's chunk vectors, as recorded or as legacy implies."""
    model_id, backend = store.embedding()
    if model_id is None:
        return embedder.weights_id, backend or "torch"
    return model_id, backend or "?"


def _dimension(model_id: str) -> int | None:
    found = re.search(r"@(\d+)(\+|$)", model_id)
    return int(found.group(1)) if found else None


def reembed(store: ChunkStore, embedder: Embedder, title_weight: float, progress: Progress | None = None) -> int:
    """Re-embed every chunk with `embedder` if the store holds other vectors; returns how many.

    Chunks keep their ids, text and metadata; only the vectors change, in place, batch by batch.
    The record changes last: if this stops halfway, the store still says it holds the old
    vectors, and the next ingest re-embeds it again (searches meanwhile see a mix of two
    precisions of one model, or, for another model, refuse as before).
    """
    recorded, backend = recorded_embedding(store, embedder)
    if recorded == embedder.model_id:
        return 0
    ids = store.chunk_ids()
    if not ids:
        store.mark_embedding(embedder.model_id, embedder.backend)
        return 0
    stored_dimension = _dimension(recorded)
    if stored_dimension is not None and stored_dimension != embedder.dimension:
        raise VectorMismatch(
            f"the knowledge base holds {stored_dimension}-dimension vectors ({recorded}), the configured "
            f"model makes {embedder.dimension}: ingest into a new collection (ASKLOOP_COLLECTION) instead"
        )
    started = time.perf_counter()
    log.warning(
        "the knowledge base was embedded as %s (%s backend); re-embedding its %d chunks as %s (%s backend)",
        recorded, backend, len(ids), embedder.model_id, embedder.backend,
    )
    if progress:
        progress(0, len(ids))
    titles: dict[str, Any] = {}
    done = 0
    for start in range(0, len(ids), REEMBED_BATCH):
        chunks = sorted(store.chunks_by_id(ids[start : start + REEMBED_BATCH]), key=lambda c: len(embedding_text(c)))
        store.upsert(chunks, embed_chunks(embedder, chunks, title_weight, titles))
        done += len(chunks)
        if progress:
            progress(done, len(ids))
    store.mark_embedding(embedder.model_id, embedder.backend)
    log.warning("re-embedded %d chunks in %.0f s", len(ids), time.perf_counter() - started)
    return len(ids)


class VectorCheck:
    """Whether questions embedded by `embedder` can be searched against the store's chunks,
    re-read at most every `refresh_seconds` (an ingest elsewhere may re-embed the store)."""

    def __init__(self, store: ChunkStore, embedder: Embedder, refresh_seconds: float = 5.0) -> None:
        self.store = store
        self.embedder = embedder
        self.refresh_seconds = refresh_seconds
        self._checked = float("-inf")
        self._problem: VectorMismatch | None = None
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def check(self) -> None:
        """Raise `VectorMismatch` for another model's vectors; warn (once) for another precision."""
        now = time.monotonic()
        with self._lock:
            if now - self._checked >= self.refresh_seconds:
                self._problem = self._look()
                self._checked = now
            problem = self._problem
        if problem is not None:
            raise problem

    def _look(self) -> VectorMismatch | None:
        if self.store.embedding()[0] is None and self.store.count() == 0:
            return None  # nothing stored yet: nothing to disagree with
        recorded, backend = recorded_embedding(self.store, self.embedder)
        mine = self.embedder.model_id
        if recorded == mine:
            return None
        if same_weights(recorded, mine):
            if recorded not in self._warned:
                self._warned.add(recorded)
                log.warning(
                    "the knowledge base was embedded as %s (%s backend) and questions are embedded as %s "
                    "(%s backend): answers still work; `askloop ingest` re-embeds it to match",
                    recorded, backend, mine, self.embedder.backend,
                )
            return None
        return VectorMismatch(
            f"the knowledge base was embedded as {recorded} ({backend} backend), but questions would be "
            f"embedded as {mine}: run `askloop ingest` on your documents to re-embed it, or configure the "
            "model it was built with"
        )
