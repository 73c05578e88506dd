"""A query encoder tuned from feedback: the embedding model plus a small LoRA update.

Only questions go through it; stored chunk vectors stay as the base model made them, so a tuned
encoder needs no re-indexing and rolling a version back is instant. The update is low-rank
(LoRA, via `peft`): ~330k numbers for MiniLM, small enough to live in the tuning payload beside
the memories, so it is versioned, approved and reverted with them. At load time it is merged
into a private copy of the model, so a tuned question costs one ordinary forward pass.

On the ONNX backends the merged model is exported like the base model (`retrieval.onnx_export`)
and run at the base model's precision, so a tuned question costs what a plain one does and the
process that serves it needs no torch once the export is in the cache folder: the evaluation
gate, which decodes every proposal before a moderator sees it, leaves it there. Training stays on
torch (`feedback.encoder_tuning`).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import shutil
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from retrieval.embedding_base import Embedder

# Every linear layer of a BERT-style encoder block (attention and feed-forward), not the pooler.
LORA_TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")


@dataclass(frozen=True)
class LoraShape:
    rank: int
    alpha: float
    targets: tuple[str, ...] = LORA_TARGETS


def lora_config(shape: LoraShape) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=shape.rank, lora_alpha=shape.alpha, target_modules=list(shape.targets), lora_dropout=0.0)


def with_lora(model: Any, shape: LoraShape) -> Any:
    """A deep copy of a SentenceTransformer whose transformer carries fresh LoRA layers."""
    from peft import get_peft_model

    tuned = copy.deepcopy(model)
    with warnings.catch_warnings():  # peft asks transformers about a renamed attribute
        warnings.simplefilter("ignore", FutureWarning)
        tuned[0].model = get_peft_model(tuned[0].model, lora_config(shape))
    return tuned


def lora_state(model: Any) -> dict[str, np.ndarray]:
    """The LoRA weights of a `with_lora` model, by parameter name."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(model[0].model)
    return {name: tensor.detach().cpu().numpy().astype(np.float32) for name, tensor in state.items()}


class QueryEncoder:
    """The base model with a LoRA update merged in; encodes questions, one lock per instance."""

    def __init__(self, base: Any, shape: LoraShape, weights: dict[str, np.ndarray]) -> None:
        import torch
        from peft import set_peft_model_state_dict

        tuned = with_lora(base, shape)
        peft_model = tuned[0].model
        state = {name: torch.from_numpy(np.asarray(w, dtype=np.float32)) for name, w in weights.items()}
        result = set_peft_model_state_dict(peft_model, state)
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        if unexpected:
            raise ValueError(f"LoRA weights that fit no layer: {unexpected[:3]}")
        tuned[0].model = peft_model.merge_and_unload()
        tuned.eval()
        self._model = tuned
        self._lock = threading.Lock()

    @property
    def sentence_transformer(self) -> Any:
        """The merged model (what the ONNX backends export)."""
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        from retrieval.embedding_base import SMALL_INPUT
        from retrieval.torch_embedder import intra_op_threads

        threads = intra_op_threads(1) if len(texts) <= SMALL_INPUT else contextlib.nullcontext()
        with self._lock, threads:
            vectors = self._model.encode(
                list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return np.asarray(vectors, dtype=np.float32)


class TextEncoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class _Batch:
    collecting: bool
    wanted: list[str] = field(default_factory=list)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


class TunedEncoder:
    """A tuned query encoder on any backend, which can also encode many questions in one batch
    ahead of the searches that ask for them one by one (`batched_queries`)."""

    def __init__(self, inner: TextEncoder, dimension: int) -> None:
        self._inner = inner
        self.dimension = dimension
        self._local = threading.local()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        batch: _Batch | None = getattr(self._local, "batch", None)
        if batch is not None and batch.collecting:
            batch.wanted.extend(texts)
            return np.zeros((len(texts), self.dimension), dtype=np.float32)
        if batch is not None and texts and all(t in batch.vectors for t in texts):
            return np.stack([batch.vectors[t] for t in texts])
        return np.asarray(self._inner.encode(list(texts)), dtype=np.float32)

    @contextlib.contextmanager
    def collecting(self) -> Iterator[list[str]]:
        """Within: encode() only notes its texts (and returns zeros); yields the list of them."""
        batch = _Batch(collecting=True)
        self._local.batch = batch
        try:
            yield batch.wanted
        finally:
            self._local.batch = None

    @contextlib.contextmanager
    def primed(self, texts: Sequence[str]) -> Iterator[None]:
        """Within (this thread): encode() answers these texts from one batch computed up front."""
        unique = list(dict.fromkeys(texts))
        vectors = np.asarray(self._inner.encode(unique), dtype=np.float32) if unique else np.zeros((0, self.dimension))
        self._local.batch = _Batch(collecting=False, vectors=dict(zip(unique, vectors)))
        try:
            yield
        finally:
            self._local.batch = None


@contextlib.contextmanager
def batched_queries(tuning: Any, questions: Sequence[str], vectors: np.ndarray) -> Iterator[None]:
    """Within: the searches of these questions with `tuning` get their tuned-encoder vectors from
    one batch. A dry run of the tuning's own `search_query` tells which questions it will encode
    (those within the encoder's reach), so exactly those are encoded, once."""
    factory = getattr(tuning, "query_encoder", None)
    encoder = factory() if callable(factory) else None
    if not isinstance(encoder, TunedEncoder) or not len(questions):
        yield
        return
    with encoder.collecting() as wanted:
        for question, vector in zip(questions, vectors):
            tuning.search_query(question, vector)
    with encoder.primed(wanted):
        yield


_TUNED_EXPORTS_KEPT = 6  # exported tuned encoders kept on disk (~23 MB each at int8)


def tuned_query_encoder(base: "Embedder", shape: LoraShape, weights: dict[str, np.ndarray]) -> TunedEncoder:
    """`base` with the LoRA update merged in, on `base`'s backend (see the module docstring)."""
    cache_root: Path | None = getattr(base, "cache_root", None)
    if cache_root is None:  # torch
        return TunedEncoder(QueryEncoder(base.sentence_transformer, shape, weights), base.dimension)
    from retrieval.onnx_runner import OnnxRunner
    from retrieval.onnx_export import ensure_export

    precision = str(getattr(base, "precision", "fp32"))
    digest = hashlib.sha256(f"{getattr(base, 'folder', '')}|{shape}".encode())
    for name in sorted(weights):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(weights[name], dtype=np.float32).tobytes())
    folder = cache_root / "tuned" / digest.hexdigest()[:20]
    ensure_export(
        folder, precision, lambda: QueryEncoder(base.sentence_transformer, shape, weights).sentence_transformer,
        keep_fp32=precision == "fp32",
    )
    folder.touch()
    _forget_old_exports(folder.parent)
    return TunedEncoder(OnnxRunner(folder, precision), base.dimension)


def _forget_old_exports(parent: Path) -> None:
    """Keep the most recently used tuned exports; a version rolled back to is exported again."""
    try:
        folders = sorted((p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    for old in folders[_TUNED_EXPORTS_KEPT:]:
        shutil.rmtree(old, ignore_errors=True)


_ENCODERS: "OrderedDict[str, TunedEncoder]" = OrderedDict()
_ENCODERS_LOCK = threading.Lock()
_ENCODERS_KEPT = 3  # a merged model costs ~90 MB: the live version, a candidate and one more


def cached_encoder(key: str, build: Any) -> TunedEncoder:
    """One merged model per payload (`key`), built on first use: merging takes about a second."""
    with _ENCODERS_LOCK:
        found = _ENCODERS.get(key)
        if found is not None:
            _ENCODERS.move_to_end(key)
            return found
    encoder = build()
    with _ENCODERS_LOCK:
        _ENCODERS[key] = encoder
        while len(_ENCODERS) > _ENCODERS_KEPT:
            _ENCODERS.popitem(last=False)
    return encoder
