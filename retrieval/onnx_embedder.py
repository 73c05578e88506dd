"""The ONNX backends: onnxruntime and the model's own tokenizer, no torch.

The tokenizer file a model ships may pad and truncate every input to a fixed length (the bundled
MiniLM's pads to 128): used as is, short questions pay for 128 tokens and long chunks are cut
where the model is not (it reads 256), which gives wrong vectors. Padding is switched off and
truncation set to the model's own maximum. Texts run one at a time by default (see
`OnnxEmbedder.BATCH`); larger batches are padded to their longest member only, after sorting the
inputs by length, as sentence-transformers does.

onnxruntime's worker threads spin while they wait for work, which slowed torch (and everything
else) in the same process about tenfold: spinning is turned off, small inputs (a question) run on
a one-thread session and only large batches (ingest) on a session with a thread per core.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.embedding_base import (
    BUNDLED_MODEL_NAME,
    PRECISION,
    Embedder,
    EmbeddingModelError,
    default_model_path,
    load_sentence_transformer,
)
from retrieval.onnx_export import ensure_export, export_folder
from retrieval.onnx_runner import OnnxRunner


_PROCESS_CACHE: Path | None = None
_PROCESS_CACHE_LOCK = threading.Lock()


def process_cache() -> Path:
    """A temporary export folder for this process, for callers that keep no cache folder."""
    global _PROCESS_CACHE
    with _PROCESS_CACHE_LOCK:
        if _PROCESS_CACHE is None:
            _PROCESS_CACHE = Path(tempfile.mkdtemp(prefix="askloop-models-"))
            atexit.register(shutil.rmtree, _PROCESS_CACHE, True)
        return _PROCESS_CACHE


class OnnxEmbedder(Embedder):
    """A sentence-transformers model exported to ONNX, run by onnxruntime (fp32 or int8)."""

    # Texts per onnxruntime call. One: int8's dynamic quantisation scales each matrix product's
    # input by its largest value, so a text batched with others (and their padding) would get a
    # slightly different vector than alone. It is also about the fastest (benchmarks/ingest_bench.py,
    # 2 cores, chunks/s at batch 1, 8, 32): int8 80, 59, 35 idle and 31, 23, 17 with one core taken;
    # fp32 47, 53, 47 idle and 21, 13, 10 with one core taken.
    BATCH = 1

    def __init__(self, model: str | None, backend: str, folder: Path, cache_root: Path, batch_size: int = BATCH) -> None:
        super().__init__(model, backend, batch_size)
        self.folder = folder
        self.cache_root = cache_root
        self.precision = PRECISION[backend] or "fp32"
        self._runner = OnnxRunner(folder, self.precision)
        self._identify(self._runner.dimension)

    @classmethod
    def for_model(cls, model: str | None, backend: str, cache_dir: Path | None = None) -> "OnnxEmbedder":
        """The model's export from `cache_dir` (made there first if missing: imports torch once)."""
        model_name = model or default_model_path()
        root = cache_dir if cache_dir is not None else process_cache()
        folder = export_folder(root, (model or "").strip() or BUNDLED_MODEL_NAME, model_name)
        precision = PRECISION[backend] or "fp32"

        def load() -> Any:
            return load_sentence_transformer(model_name)

        try:
            ensure_export(folder, precision, load)
            return cls(model, backend, folder, root)
        except EmbeddingModelError:
            raise
        except Exception as first:  # a damaged export (a disk that filled up): make it again, once
            shutil.rmtree(folder, ignore_errors=True)
            try:
                ensure_export(folder, precision, load)
                return cls(model, backend, folder, root)
            except EmbeddingModelError:
                raise
            except Exception as exc:
                raise EmbeddingModelError(
                    f"cannot prepare the {backend} encoder in {folder}: {exc.__class__.__name__}: {exc}"
                ) from first

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """`batch_size` is a hint for torch, ignored here: a text gets the same vector whoever
        asks, alone or in a batch (see `BATCH`)."""
        return self._runner.encode(texts, self.batch_size)
