"""Running one exported model: its folder's layout (written by `retrieval.onnx_export`) and
`OnnxRunner`, onnxruntime plus the model's own tokenizer — texts in, unit vectors out.

Both the backends (`retrieval.onnx_embedder`, the tuned query encoder) and the export's own check
run models through this module; it imports nothing of theirs.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.embedding_base import SMALL_INPUT, EmbeddingModelError

# Bumped when the files or what they mean change: older exports are then made again.
EXPORT_FORMAT = 2
META = "embedder.json"
FP32_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
TOKENIZER_FILE = "tokenizer.json"

def model_file(folder: Path, precision: str) -> Path:
    return folder / (INT8_FILE if precision == "int8" else FP32_FILE)


def read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == EXPORT_FORMAT else None


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
