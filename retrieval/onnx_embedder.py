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
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.embeddings import (
    BUNDLED_MODEL_NAME,
    PRECISION,
    SMALL_INPUT,
    Embedder,
    EmbeddingModelError,
    default_model_path,
    load_sentence_transformer,
)
from retrieval.onnx_export import TOKENIZER_FILE, ensure_export, export_folder, model_file, read_meta


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: no notes on unused initialisers
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxRunner:
    """One exported model (of one precision) and its tokenizer: texts in, unit vectors out."""

    def __init__(self, folder: Path, precision: str, meta: dict[str, Any] | None = None, threads: int | None = None) -> None:
        from tokenizers import Tokenizer

        meta = meta or read_meta(folder)
        if meta is None:
            raise EmbeddingModelError(f"no usable ONNX export in {folder}")
        self.dimension = int(meta["dimension"])
        self._pad = int(meta["pad_id"])
        self._lowercase = bool(meta.get("lowercase"))
        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        tokenizer.enable_truncation(max_length=int(meta["max_seq_length"]))
        self._tokenizer = tokenizer
        self._path = model_file(folder, precision)
        self._small = _session(self._path, 1)
        self._large: Any = None
        self._threads = max(1, threads or os.cpu_count() or 1)
        self._lock = threading.Lock()

    def _large_session(self) -> Any:
        if self._threads == 1:
            return self._small
        with self._lock:
            if self._large is None:
                self._large = _session(self._path, self._threads)
            return self._large

    def encode(self, texts: Sequence[str], batch_size: int = 1) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._lowercase:
            texts = [t.lower() for t in texts]
        ids = [e.ids for e in self._tokenizer.encode_batch(list(texts))]
        session = self._small if len(ids) <= SMALL_INPUT else self._large_session()
        order = np.argsort([len(i) for i in ids], kind="stable")
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        for start in range(0, len(order), max(1, batch_size)):
            rows = order[start : start + batch_size]
            width = max(len(ids[r]) for r in rows)
            batch = np.full((len(rows), width), self._pad, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, r in enumerate(rows):
                batch[i, : len(ids[r])] = ids[r]
                mask[i, : len(ids[r])] = 1
            out[rows] = session.run(None, {"input_ids": batch, "attention_mask": mask})[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


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
