"""The torch backend: sentence-transformers itself (the backend training always uses)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from retrieval.embedding_base import SMALL_INPUT, TORCH, Embedder, load_sentence_transformer


def _torch() -> Any:
    import torch

    return torch


@contextmanager
def intra_op_threads(wanted: int) -> Iterator[None]:
    """Run with `wanted` torch threads; only touches the setting when it differs."""
    torch = _torch()
    current = torch.get_num_threads()
    if current == wanted:
        yield
        return
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(current)


class TorchEmbedder(Embedder):
    """A sentence-transformers model on torch."""

    # Sentences per forward pass on torch, measured by benchmarks/ingest_bench.py (2 cores, texts
    # sorted by length): 16, 32 and 64 gave 49, 41 and 34 chunks/s with the machine otherwise idle,
    # and 7.7, 7.9 and 7.1 with one core taken by another program.
    BATCH = 16

    def __init__(self, model: str | None = None, batch_size: int = BATCH) -> None:
        super().__init__(model, TORCH, batch_size)
        self._model = load_sentence_transformer(self.model_name)
        self._identify(int(self._model.get_embedding_dimension()))
        self._lock = threading.Lock()
        self._threads = _torch().get_num_threads()

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # torch releases the GIL, but one model instance is not safe under concurrent calls.
        with self._lock, intra_op_threads(1 if len(texts) <= SMALL_INPUT else self._threads):
            vectors = self._model.encode(
                list(texts),
                batch_size=batch_size or self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)
