"""Exporting a sentence-transformers model to ONNX (and int8), once, into a cache folder.

sentence-transformers' own ONNX support needs `optimum-onnx`, which cannot be installed beside the
sentence-transformers and transformers askloop pins, so the export is done here with
`torch.onnx` (the TorchScript exporter) and `onnxruntime.quantization`: the whole model — the
transformer, its pooling and its normalisation — becomes one graph from token ids and attention
mask to the sentence vector, checked against torch before it is kept. int8 is onnxruntime's
dynamic quantisation with one scale per output channel of each weight matrix: with one scale per
matrix the vectors drift to cosine ≈ 0.96 of the exact ones; per channel they stay at ≈ 0.995
(docs/benchmarks.md).

A folder holds `model.onnx` (fp32), `model-int8.onnx`, the model's own fast tokenizer
(`tokenizer.json`) and `embedder.json` (vector size, the model's maximum sequence length, the
padding token, lower-casing). It is written under a temporary name and renamed into place, so a
process never sees half an export and two processes exporting at once both end with a whole one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.onnx_runner import EXPORT_FORMAT, FP32_FILE, INT8_FILE, META, TOKENIZER_FILE, OnnxRunner, model_file, read_meta

log = logging.getLogger(__name__)

# The exported graph must give torch's vectors on these (padded, of different lengths).
_PROBES = ["Hello", "How do I reset the password of my account when I am abroad?", "word " * 300]


def source_fingerprint(model_name: str) -> str:
    """What identifies the weights being exported, cheaply: for a model folder, every file's
    name, size and modification time (a changed file makes a new export); for a hub name, the
    name."""
    path = Path(model_name)
    if not path.is_dir():
        return model_name
    parts = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        parts.append(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}")
    return "\n".join(parts)


def export_folder(cache_dir: Path, name: str, model_name: str) -> Path:
    """Where the export of the model `name` (loaded from `model_name`) lives in `cache_dir`."""
    key = hashlib.sha256(f"{EXPORT_FORMAT}\n{name}\n{source_fingerprint(model_name)}".encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name.rsplit("/", 1)[-1])[:60] or "model"
    return cache_dir / f"{slug}-{key}"


def ensure_export(folder: Path, precision: str, load_model: Any, keep_fp32: bool = True) -> Path:
    """The model file of `precision` in `folder`, exported first if it is not there.

    `load_model()` gives the SentenceTransformer to export (called only when the fp32 graph is
    missing: it may import torch). An int8 file is quantised from the fp32 one; `keep_fp32=False`
    then deletes the fp32 file (a tuned encoder needs only the precision it runs on).
    """
    wanted = model_file(folder, precision)
    if wanted.exists() and read_meta(folder) is not None:
        return wanted
    if read_meta(folder) is None or not (folder / FP32_FILE).exists():
        _export_fp32(folder, load_model)
    if precision == "int8" and not wanted.exists():
        _quantise(folder)
    if precision == "int8" and not keep_fp32:
        (folder / FP32_FILE).unlink(missing_ok=True)
    return wanted


def _export_fp32(folder: Path, load_model: Any) -> None:
    """Export the whole model (fp32) and its tokenizer into `folder`, atomically."""
    started = time.perf_counter()
    log.warning("preparing the ONNX encoder in %s (once; it takes a few seconds)", folder)
    model = load_model()
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    _readable(work)
    try:
        meta = _write_graph(model, work / FP32_FILE)
        tokenizer = getattr(model.tokenizer, "backend_tokenizer", None)
        if tokenizer is None:
            from retrieval.embedding_base import EmbeddingModelError

            raise EmbeddingModelError("the model has no fast tokenizer: use the torch embedding backend")
        tokenizer.save(str(work / TOKENIZER_FILE))
        (work / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        _check(model, work, meta)
        _publish(work, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("ONNX encoder exported in %.1f s", time.perf_counter() - started)


def _write_graph(model: Any, target: Path) -> dict[str, Any]:
    import torch

    class SentenceGraph(torch.nn.Module):
        """Token ids and mask in, the model's own sentence vector out (pooling and all)."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner({"input_ids": input_ids, "attention_mask": attention_mask})["sentence_embedding"]

    graph = SentenceGraph(model).eval()
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    dynamic = {"batch": 0, "tokens": 1}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape checks that hold for every input
        torch.onnx.export(
            graph,
            (ids, mask),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {v: k for k, v in dynamic.items()},
                "attention_mask": {v: k for k, v in dynamic.items()},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    first = model[0]
    return {
        "format": EXPORT_FORMAT,
        "dimension": int(model.encode(["dimension"], convert_to_numpy=True).shape[1]),
        "max_seq_length": int(model.max_seq_length),
        "pad_id": int(model.tokenizer.pad_token_id or 0),
        "lowercase": bool(getattr(first, "do_lower_case", False)),
    }


def _check(model: Any, folder: Path, meta: dict[str, Any]) -> None:
    """The export must reproduce torch's vectors, padding and truncation included."""

    exact = np.asarray(model.encode(_PROBES, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False))
    got = OnnxRunner(folder, "fp32", meta).encode(_PROBES)
    worst = float(np.min(np.sum(exact * got, axis=1)))
    if worst < 0.9999:
        from retrieval.embedding_base import EmbeddingModelError

        raise EmbeddingModelError(f"the ONNX export of this model does not match torch (cosine {worst:.4f})")


def _quantise(folder: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=".int8-", dir=folder))
    try:
        target = work / INT8_FILE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _quiet_root_warnings(
                lambda: quantize_dynamic(
                    str(folder / FP32_FILE), str(target), weight_type=QuantType.QInt8, per_channel=True,
                    nodes_to_exclude=_kept_exact(folder / FP32_FILE),
                )
            )
        os.replace(target, folder / INT8_FILE)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("ONNX encoder quantised to int8 in %.1f s", time.perf_counter() - started)


# The feed-forward output projection of each transformer layer: its input comes out of GELU with
# a few large values, and dynamic quantisation scales the whole input by its largest value, so the
# rest lose most of their precision. Kept in fp32 they cost ~25% of int8's speed and take the
# vectors from cosine ≈ 0.994 to ≈ 0.997 of the exact ones (docs/benchmarks.md).
_EXACT = re.compile(r"layer\.\d+/output/dense/MatMul$")


def _kept_exact(model: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "MatMul" and _EXACT.search(n.name)]


def _quiet_root_warnings(run: Any) -> None:
    """onnxruntime's quantiser logs advice through `logging.warning` ("consider pre-processing"),
    which would print on every first run and, on a process that has not configured logging,
    install a handler on the root logger for good. A null handler and a raised level keep both
    from happening."""
    root = logging.getLogger()
    level, quiet = root.level, logging.NullHandler()
    root.addHandler(quiet)
    root.setLevel(logging.ERROR)
    try:
        run()
    finally:
        root.setLevel(level)
        root.removeHandler(quiet)


def _readable(folder: Path) -> None:
    """mkdtemp makes a private folder; an export is for every process of the installation."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)


def _publish(work: Path, folder: Path) -> None:
    """Move a finished export into place; if another process was first, keep theirs."""
    if folder.exists():
        if read_meta(folder) is not None and (folder / FP32_FILE).exists():
            return
        shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(work, folder)
    except OSError:
        if read_meta(folder) is None:
            raise
