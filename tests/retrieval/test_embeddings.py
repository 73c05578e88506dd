"""The embedding model wrapper: unit vectors, LangChain interface, threads, a missing model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retrieval.embeddings import MAX_MODEL_ID, SMALL_INPUT, Embedder, EmbeddingModelError, model_identity


def test_vectors_are_unit_length_and_similar_texts_are_close(embedder) -> None:
    vectors = embedder.encode(["How do I connect to the VPN?", "VPN connection help", "Birthday cake recipe"])
    assert vectors.shape == (3, embedder.dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert embedder.encode([]).shape == (0, embedder.dimension)


def test_langchain_embeddings_interface(embedder) -> None:
    query = embedder.embed_query("hello")
    documents = embedder.embed_documents(["hello", "world"])
    assert len(query) == embedder.dimension and len(documents) == 2
    assert np.allclose(query, documents[0], atol=1e-5)


def test_small_inputs_use_one_thread_and_restore_the_setting(embedder, monkeypatch) -> None:
    seen: list[int] = []
    real = embedder._model.encode

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(embedder._model, "encode", spy)
    before = torch.get_num_threads()
    embedder.encode_one("a question")
    embedder.encode(["a chunk"] * (SMALL_INPUT + 1))
    assert seen == [1, embedder._threads]
    assert torch.get_num_threads() == before


def test_missing_model_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(EmbeddingModelError, match="cannot load embedding model"):
        Embedder(str(tmp_path / "no-such-model"))


def test_model_id_names_the_model_and_its_size_not_where_it_is_installed(embedder) -> None:
    assert embedder.model_id == f"all-MiniLM-L6-v2@{embedder.dimension}"
    assert model_identity("sentence-transformers/all-mpnet-base-v2", 768) == "sentence-transformers/all-mpnet-base-v2@768"
    deep_a, deep_b = "/models/" + "a" * 300 + "/model", "/models/" + "b" * 300 + "/model"
    assert len(model_identity(deep_a, 384)) == MAX_MODEL_ID
    assert model_identity(deep_a, 384) != model_identity(deep_b, 384)  # same tail, different model
