"""A tuning version's payload turned into the `Tuning` retrieval answers with, memoised per
version (the bot decodes the active version for every question)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from retrieval.learned import CorrectionPassage, DocBoostTuning, LearnedTuning
from retrieval.query_encoder import LoraShape, TunedEncoder, cached_encoder, tuned_query_encoder
from retrieval.tuning import NoTuning, Tuning
from retrieval.tuning_schema import KIND_ASKLOOP, KIND_DOC_BOOST, MemoryParams, PayloadError, decode_matrix

if TYPE_CHECKING:
    from retrieval.embeddings import Embedder


# -- payload → Tuning (memoised per version: the bot calls this on every question) -----------------
def _decode_askloop(payload: dict[str, Any], version: int | None, embedder: "Embedder | None" = None) -> LearnedTuning:
    params = MemoryParams.from_dict(payload.get("params"))
    memories = payload.get("memories") or {}
    if memories.get("questions"):
        questions = decode_matrix(memories["questions"])
    else:
        questions = np.zeros((0, int(payload.get("dim", 0) or 0)), dtype=np.float32)
    memory_question = list(memories.get("question_index", []))
    memory_doc = [str(d) for d in memories.get("doc_ids", [])]
    memory_weight = list(memories.get("weights", []))
    if not (len(memory_question) == len(memory_doc) == len(memory_weight)):
        raise PayloadError("tuning payload: memory columns differ in length")
    if memory_question and max(memory_question) >= len(questions):
        raise PayloadError("tuning payload: a memory points past the question vectors")
    passages = [
        CorrectionPassage(
            doc_id=str(p["doc_id"]),
            title=str(p.get("title", "Correction")),
            text=str(p.get("text", "")),
            question=str(p.get("question", "")),
            correction_id=p.get("correction_id"),
        )
        for p in payload.get("passages", [])
    ]
    passage_vectors = decode_matrix(payload["passage_vectors"]) if passages else None
    adapter_blob = payload.get("adapter")
    adapter = decode_matrix(adapter_blob["matrix"]) if adapter_blob else None
    center = decode_matrix(payload["center"]) if payload.get("center") else None
    titles = payload.get("titles") or {}
    title_docs = [str(d) for d in titles.get("doc_ids", [])]
    title_vectors = decode_matrix(titles["vectors"]) if titles.get("vectors") else None
    if title_vectors is not None and (title_vectors.ndim != 2 or len(title_vectors) != len(title_docs)):
        raise PayloadError("tuning payload: title vectors and document ids differ in length")
    encoder_block = payload.get("query_encoder")
    return LearnedTuning(
        query_encoder=_encoder_factory(encoder_block, str(payload.get("id", "")), embedder) if encoder_block else None,
        encoder_blend=float((encoder_block or {}).get("blend", 1.0)),
        encoder_reach=float((encoder_block or {}).get("reach", 0.0)),
        encoder_title_margin=float((encoder_block or {})["title_margin"]) if "title_margin" in (encoder_block or {}) else None,
        center=center,
        version=version,
        params=params,
        questions=questions,
        memory_question=np.asarray(memory_question, dtype=np.int64),
        memory_doc=memory_doc,
        memory_weight=np.asarray(memory_weight, dtype=np.float32),
        memory_is_vote=np.array([r.startswith("a") for r in memories.get("refs", [])], bool)
        if len(memories.get("refs", [])) == len(memory_weight)
        else None,
        passages=passages,
        passage_vectors=passage_vectors,
        adapter=adapter,
        title_docs=title_docs,
        title_vectors=title_vectors,
        title_texts=[str(t) for t in titles.get("texts", [])] or None,
    )


def _encoder_factory(block: dict[str, Any], payload_id: str, embedder: "Embedder | None" = None) -> Callable[[], TunedEncoder]:
    """Checks the block and merges the model now, so a bad payload fails when decoded (the bot
    then serves the base index) rather than on some later question. The merged model is kept in a
    small cache and rebuilt on demand if it was evicted. It runs on `embedder`'s backend (default:
    the process's own embedder of that model); any precision of the same weights will do."""
    from retrieval.embeddings import loaded_embedder, same_weights

    try:
        shape = LoraShape(rank=int(block["rank"]), alpha=float(block["alpha"]), targets=tuple(block["targets"]))
        weights = {str(name): decode_matrix(blob) for name, blob in block["weights"].items()}
        model_name, model_id = str(block.get("model_name") or ""), str(block["model"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PayloadError(f"malformed query encoder in tuning payload: {exc}") from exc
    base = embedder if embedder is not None else loaded_embedder(model_name or None)
    if not same_weights(base.model_id, model_id):
        raise PayloadError(f"the tuned query encoder was made for {model_id}, not {base.model_id}")
    key = f"{payload_id or f'unversioned-{id(block)}'}:{base.model_id}:{base.backend}"

    def build() -> TunedEncoder:
        try:
            return tuned_query_encoder(base, shape, weights)
        except (ValueError, RuntimeError) as exc:  # weights that do not fit this model's layers
            raise PayloadError(f"the tuned query encoder does not fit {model_id}: {exc}") from exc

    def factory() -> TunedEncoder:
        return cached_encoder(key, build)

    factory()  # merged now (ONNX: exported too, once per version): weights that do not fit fail at decode time
    return factory


def _decode(payload: dict[str, Any], version: int | None, embedder: "Embedder | None" = None) -> Tuning:
    if not payload:
        return NoTuning(version)
    kind = payload.get("kind", KIND_ASKLOOP)
    if kind == KIND_ASKLOOP:
        return _decode_askloop(payload, version, embedder)
    if kind == KIND_DOC_BOOST:
        return DocBoostTuning(version, {str(k): float(v) for k, v in payload.get("boosts", {}).items()})
    if kind == "none":
        return NoTuning(version)
    raise PayloadError(f"unknown tuning kind {kind!r}")


_CACHE: "OrderedDict[tuple[int, str], Tuning]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8


def tuning_from_payload(
    payload: dict[str, Any] | None, version: int | None, embedder: "Embedder | None" = None
) -> Tuning:
    """The Tuning a version's payload describes; decoded once per (version, payload id, embedder).
    `embedder`: the one questions are embedded with (its backend runs a tuned query encoder).

    Versions are immutable, so a decoded version can be reused for every question. The payload's
    content hash (`id`, written by the learning engine) is part of the key because several
    feedback databases (say, one per evaluated strategy) each have their own version 1.
    """
    identity = str((payload or {}).get("id", ""))
    if version is None or not identity:
        return _decode(payload or {}, version, embedder)
    # The id leaves out the document titles (a snapshot of the knowledge base): their own id counts.
    encoder = f"{embedder.model_id}:{embedder.backend}" if embedder is not None else ""
    key = (version, f"{identity}:{((payload or {}).get('titles') or {}).get('id', '')}:{encoder}")
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
            return cached
    tuning = _decode(payload or {}, version, embedder)
    with _CACHE_LOCK:
        _CACHE[key] = tuning
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return tuning
