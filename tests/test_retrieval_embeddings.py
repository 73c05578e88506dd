"""The embedding model wrapper: unit vectors, LangChain interface, threads, a missing model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retrieval.embeddings import SMALL_INPUT, Embedder, EmbeddingModelError


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
