"""Chunks and questions embedded compatibly across backends: the store's record, re-embedding on
ingest, what search does with another backend's or another model's vectors, batched searches,
and the tuned query encoder on the ONNX backends."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from retrieval.chunking import Chunker
from retrieval.ingest import Ingestor, embed_chunks
from retrieval.learned import LearnedTuning, MemoryParams
from retrieval.loaders import load_all
from retrieval.onnx_embedder import OnnxEmbedder
from retrieval.query_encoder import LoraShape, QueryEncoder, TunedEncoder, tuned_query_encoder, with_lora
from retrieval.reembed import VectorMismatch
from retrieval.search import KnowledgeBase
from retrieval.store import ChunkStore, open_client
from retrieval.tuning import NoTuning


def new_store(path: Path) -> ChunkStore:
    return ChunkStore(open_client(path, None), "compat")


def test_ingest_records_the_vectors_and_reembeds_when_the_backend_changes(tmp_path, tiny_corpus, embedder, int8, caplog) -> None:
    store = new_store(tmp_path / "chroma")
    Ingestor(store, embedder, Chunker()).run([tiny_corpus])
    assert store.embedding() == (embedder.model_id, "onnx-fp32")
    again = Ingestor(store, embedder, Chunker()).run([tiny_corpus])
    assert again.chunks_reembedded == 0 and again.documents_skipped == 6  # same vectors: nothing to do

    seen: list[tuple[int, int]] = []
    with caplog.at_level(logging.WARNING, logger="retrieval.reembed"):
        report = Ingestor(store, int8, Chunker()).run([tiny_corpus], progress=lambda d, t: seen.append((d, t)))
    count = store.count()
    assert report.chunks_reembedded == count and report.documents_skipped == 6
    assert report.as_dict()["chunks"]["reembedded"] == count
    assert seen[0] == (0, count) and (count, count) in seen  # then the new chunks: none here
    assert "re-embedding its 6 chunks as all-MiniLM-L6-v2@384+int8 (onnx-int8 backend)" in caplog.text
    assert store.embedding() == (int8.model_id, "onnx-int8")
    chunks = store.chunks_by_id(store.chunk_ids())
    expected = embed_chunks(int8, chunks, Chunker().title_weight)
    stored = {c.chunk_id: v for c, v in zip(chunks, _vectors(store, [c.chunk_id for c in chunks]))}
    for chunk, vector in zip(chunks, expected):
        assert float(stored[chunk.chunk_id] @ vector) > 0.99999


def test_a_store_without_a_record_holds_the_exact_vectors(tmp_path, tiny_corpus, embedder, int8) -> None:
    """Stores written before the record existed were embedded by torch: exact vectors."""
    store = new_store(tmp_path / "chroma")
    ingestor = Ingestor(store, embedder, Chunker())
    documents = [d for r in load_all([tiny_corpus]) for d in r.documents]
    chunks = [c for d in documents for c in ingestor.chunker.split(d)]
    store.upsert(chunks, embed_chunks(embedder, chunks, 1.0))
    assert store.embedding() == (None, None)
    assert ingestor.reembed() == 0  # exact: nothing to do
    assert Ingestor(store, int8, Chunker()).reembed() == len(chunks)


def test_search_warns_about_another_precision_and_refuses_another_model(tmp_path, tiny_corpus, embedder, int8, caplog) -> None:
    store = new_store(tmp_path / "chroma")
    Ingestor(store, embedder, Chunker()).run([tiny_corpus])
    with caplog.at_level(logging.WARNING, logger="retrieval.reembed"):
        hits = KnowledgeBase(store, int8).search("How do I connect to the VPN?", 3).hits
    assert hits[0].doc_id == "vpn"  # the same weights: answers still work
    assert "`askloop ingest` re-embeds it to match" in caplog.text

    store.mark_embedding("another-model@384", "torch")
    with pytest.raises(VectorMismatch, match="embedded as another-model@384 .* run `askloop ingest`"):
        KnowledgeBase(store, embedder).search("How do I connect to the VPN?", 3)
    store.mark_embedding("another-model@768", "torch")
    with pytest.raises(VectorMismatch, match="holds 768-dimension vectors"):
        Ingestor(store, embedder, Chunker()).reembed()
    assert store.embedding()[0] == "another-model@768"  # nothing changed


def test_an_empty_store_is_no_mismatch(tmp_path, int8) -> None:
    store = new_store(tmp_path / "chroma")
    KnowledgeBase(store, int8).vectors.check()  # nothing stored: nothing to disagree with


class CountingEncoder:
    """A real encoder (the int8 model standing in for a tuned one) that records its calls."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.calls = inner, []

    def encode(self, texts):  # type: ignore[no-untyped-def]
        self.calls.append(list(texts))
        return self.inner.encode(texts)


def test_search_many_gives_search_results_with_one_batch_for_the_tuned_encoder(tiny_services, embedder, int8) -> None:
    kb = tiny_services.knowledge_base
    remembered = ["How do I connect to the VPN from home?", "Who approves my expenses?"]
    counting = CountingEncoder(int8)
    tuned = TunedEncoder(counting, embedder.dimension)
    tuning = LearnedTuning(
        version=None, params=MemoryParams(), questions=embedder.encode(remembered),
        memory_question=np.array([0, 1]), memory_doc=["vpn", "expenses"], memory_weight=np.array([1.0, 1.0]),
        query_encoder=lambda: tuned, encoder_blend=0.5, encoder_reach=0.45,
    )
    asked = ["VPN from home: how?", "expenses approval?", "When do I get a new laptop?", "VPN from home: how?"]
    one_by_one = [kb.search(q, 3, tuning) for q in asked]
    counting.calls.clear()
    together = kb.search_many(asked, 3, tuning)
    assert [[(h.doc_id, round(h.score, 5)) for h in r.hits] for r in together] == \
        [[(h.doc_id, round(h.score, 5)) for h in r.hits] for r in one_by_one]
    assert len(counting.calls) == 1  # one batch, with only the questions within the encoder's reach
    within = set(counting.calls[0])
    assert "When do I get a new laptop?" not in within and "VPN from home: how?" in within
    assert [r.hits for r in kb.search_many(asked, 3, NoTuning())] == [kb.search(q, 3).hits for q in asked]


@pytest.fixture(scope="module")
def lora(torch_embedder):  # type: ignore[no-untyped-def]
    """A LoRA update with small random weights (a trained one would need feedback and seconds)."""
    import torch

    from retrieval.query_encoder import lora_state

    shape = LoraShape(rank=4, alpha=8.0)
    torch.manual_seed(3)
    model = with_lora(torch_embedder.sentence_transformer, shape)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.02)
    return shape, lora_state(model)


def test_a_tuned_encoder_runs_on_the_onnx_backend_as_on_torch(tmp_path, embedder, torch_embedder, lora) -> None:
    shape, weights = lora
    questions = ["How do I connect to the VPN from home?", "expenses approval", "a new laptop"]
    on_torch = QueryEncoder(torch_embedder.sentence_transformer, shape, weights).encode(questions)
    assert np.sum(on_torch * torch_embedder.encode(questions), axis=1).max() < 0.9999  # the update counts
    base = OnnxEmbedder(None, "onnx-fp32", embedder.folder, tmp_path)  # tuned exports go to tmp_path
    tuned = tuned_query_encoder(base, shape, weights)
    assert np.abs(tuned.encode(questions) - on_torch).max() < 1e-5
    exported = [p for p in (tmp_path / "tuned").iterdir() if not p.name.startswith(".")]
    assert len(exported) == 1 and (exported[0] / "model.onnx").exists()
    stamp = (exported[0] / "model.onnx").stat().st_mtime_ns
    again = tuned_query_encoder(base, shape, weights)  # from the cache folder, not exported again
    assert (exported[0] / "model.onnx").stat().st_mtime_ns == stamp
    assert np.abs(again.encode(questions) - on_torch).max() < 1e-5


def test_a_tuned_encoder_on_int8_keeps_only_the_int8_file(tmp_path, embedder, torch_embedder, lora) -> None:
    shape, weights = lora
    base = OnnxEmbedder(None, "onnx-int8", embedder.folder, tmp_path)
    tuned = tuned_query_encoder(base, shape, weights)
    questions = ["How do I connect to the VPN from home?", "expenses approval"]
    on_torch = QueryEncoder(torch_embedder.sentence_transformer, shape, weights).encode(questions)
    assert np.sum(tuned.encode(questions) * on_torch, axis=1).min() > 0.99
    (folder,) = [p for p in (tmp_path / "tuned").iterdir() if not p.name.startswith(".")]
    assert (folder / "model-int8.onnx").exists() and not (folder / "model.onnx").exists()


def _vectors(store: ChunkStore, ids: list[str]) -> np.ndarray:
    got = store._call("reading", lambda c: c.get(ids=ids, include=["embeddings"]))
    order = {i: n for n, i in enumerate(got["ids"])}
    return np.asarray(got["embeddings"], dtype=np.float32)[[order[i] for i in ids]]
