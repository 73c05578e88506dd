"""The embedders: unit vectors, LangChain interface, threads, a missing model, and the ONNX
backends against torch (agreement, padding and truncation, the export cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval.embeddings import (
    MAX_MODEL_ID,
    SMALL_INPUT,
    EmbeddingModelError,
    make_embedder,
    model_identity,
    same_weights,
    shared_embedder,
)

ROOT = Path(__file__).resolve().parents[2]
# Sentences of every length the bot meets: a word, questions, paragraphs, text past 256 tokens.
SENTENCES = [
    "VPN",
    "How do I connect to the VPN from home?",
    "Who approves expenses above 50 euros, and how long does it take?",
    "Deploys go through the release pipeline after two approvals. Never deploy on Fridays after 15:00; "
    "roll back with the pipeline's rollback button. " * 3,
    "Laptops are replaced every three years. " * 60,  # ~420 tokens: truncated at the model's 256
    "Birthday cake recipe",
]
# Agreement required of int8 with the exact vectors. Measured on both evaluation sets
# (benchmarks/backend_quality.py): questions cosine ≥ 0.988 (mean 0.997), chunks ≥ 0.996; these
# sentences give 0.996-0.998. The bounds leave room for the worst question seen, no more.
INT8_MIN_COSINE = 0.985
INT8_MEAN_COSINE = 0.995


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


def test_default_backend_is_exact_onnx_and_int8_names_its_precision(embedder, int8, torch_embedder) -> None:
    assert embedder.backend == "onnx-fp32"
    assert embedder.model_id == torch_embedder.model_id == f"all-MiniLM-L6-v2@{embedder.dimension}"
    assert int8.model_id == f"all-MiniLM-L6-v2@{embedder.dimension}+int8"
    assert int8.weights_id == torch_embedder.model_id
    assert same_weights(int8.model_id, torch_embedder.model_id)
    assert not same_weights(int8.model_id, "all-mpnet-base-v2@768")


def test_fp32_onnx_gives_torchs_vectors(embedder, int8, torch_embedder) -> None:
    fp32 = embedder
    assert fp32.folder == int8.folder  # one export serves both precisions
    assert fp32.model_id == torch_embedder.model_id  # same vectors, same name
    exact = torch_embedder.encode(SENTENCES)
    got = fp32.encode(SENTENCES)
    assert np.abs(got - exact).max() < 1e-5


def test_int8_agrees_with_torch_within_the_measured_tolerance(int8, torch_embedder) -> None:
    exact = torch_embedder.encode(SENTENCES)
    cosine = np.sum(int8.encode(SENTENCES) * exact, axis=1)
    assert cosine.min() >= INT8_MIN_COSINE and cosine.mean() >= INT8_MEAN_COSINE, cosine
    # and it ranks like torch: the VPN question is nearest the VPN word, not the cake
    vectors = int8.encode(SENTENCES)
    assert vectors[1] @ vectors[0] > vectors[1] @ vectors[5]


def test_int8_gives_a_text_the_same_vector_alone_or_in_a_batch(int8) -> None:
    """Dynamic quantisation scales a matrix product's input by its largest value: batched with
    other texts (or their padding), a text would get another vector. It runs one at a time."""
    alone = np.stack([int8.encode_one(t) for t in SENTENCES])
    assert np.abs(int8.encode(SENTENCES * 4, batch_size=64)[: len(SENTENCES)] - alone).max() < 1e-6


def test_padding_and_truncation_match_the_model(embedder, torch_embedder) -> None:
    """A batch gives each text the vector it gets alone (padding is masked), and a text longer
    than the model reads is cut where the model cuts it (256 tokens), not at the tokenizer
    file's 128."""
    from retrieval.onnx_embedder import OnnxRunner

    fp32 = embedder
    alone = np.stack([fp32.encode_one(t) for t in SENTENCES])
    batched = OnnxRunner(fp32.folder, "fp32")
    together = batched.encode(SENTENCES * 4, batch_size=8)  # over SMALL_INPUT: sorted, padded batches
    assert len(SENTENCES) * 4 > SMALL_INPUT
    assert np.abs(together[: len(SENTENCES)] - alone).max() < 1e-5
    assert np.abs(together[-len(SENTENCES) :] - alone).max() < 1e-5
    assert np.abs(fp32.encode(SENTENCES * 4)[: len(SENTENCES)] - alone).max() < 1e-5
    long_text = SENTENCES[4]
    at_256 = torch_embedder.encode([long_text])[0]
    assert abs(float(fp32.encode_one(long_text) @ at_256) - 1.0) < 1e-5
    # the difference truncation makes: what the first 128 tokens alone give is another vector
    words = long_text.split()
    first_128 = torch_embedder.encode([" ".join(words[:100])])[0]
    assert float(at_256 @ first_128) < 0.999


def test_small_inputs_use_one_thread_and_restore_the_setting(torch_embedder, monkeypatch) -> None:
    import torch

    seen: list[int] = []
    real = torch_embedder._model.encode

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(torch_embedder._model, "encode", spy)
    before = torch.get_num_threads()
    torch_embedder.encode_one("a question")
    torch_embedder.encode(["a chunk"] * (SMALL_INPUT + 1))
    assert seen == [1, torch_embedder._threads]
    assert torch.get_num_threads() == before


def test_onnx_small_inputs_run_on_the_one_thread_session(embedder) -> None:
    runner = embedder._runner
    assert runner._small.get_session_options().intra_op_num_threads == 1
    embedder.encode(["a chunk"] * (SMALL_INPUT + 1))
    large = runner._large_session()
    assert large.get_session_options().intra_op_num_threads == runner._threads


def test_missing_model_is_a_clear_error(tmp_path) -> None:
    for backend in ("torch", "onnx-int8"):
        with pytest.raises(EmbeddingModelError, match="cannot load embedding model"):
            make_embedder(str(tmp_path / "no-such-model"), backend, tmp_path / "cache")


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(EmbeddingModelError, match="unknown embedding backend 'cuda'"):
        shared_embedder(None, "cuda")


def test_model_id_names_the_model_and_its_size_not_where_it_is_installed(torch_embedder) -> None:
    assert torch_embedder.model_id == f"all-MiniLM-L6-v2@{torch_embedder.dimension}"
    assert model_identity("sentence-transformers/all-mpnet-base-v2", 768) == "sentence-transformers/all-mpnet-base-v2@768"
    assert model_identity("m", 384, "int8") == "m@384+int8"
    deep_a, deep_b = "/models/" + "a" * 300 + "/model", "/models/" + "b" * 300 + "/model"
    assert len(model_identity(deep_a, 384)) == MAX_MODEL_ID
    assert len(model_identity(deep_a, 384, "int8")) == MAX_MODEL_ID
    assert model_identity(deep_a, 384).endswith("@384") and model_identity(deep_a, 384, "int8").endswith("@384+int8")
    assert model_identity(deep_a, 384) != model_identity(deep_b, 384)  # same tail, different model


def test_the_export_is_made_once_and_reused_from_the_cache_folder(embedder) -> None:
    """The export cache holds both precisions and the model's tokenizer; a new process loads it
    without importing torch (or sentence-transformers)."""
    folder = embedder.folder
    assert folder.parent == embedder.cache_root
    assert {"model.onnx", "tokenizer.json", "embedder.json"} <= {p.name for p in folder.iterdir()}
    meta = json.loads((folder / "embedder.json").read_text())
    assert meta["max_seq_length"] == 256 and meta["dimension"] == embedder.dimension
    before = (folder / "model.onnx").stat().st_mtime_ns
    code = (
        "import sys, numpy as np\n"
        "from pathlib import Path\n"
        "from retrieval.embeddings import shared_embedder\n"
        f"e = shared_embedder(None, 'onnx-fp32', Path({str(embedder.cache_root)!r}))\n"
        "v = e.encode_one('How do I connect to the VPN from home?')\n"
        "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules, 'torch imported'\n"
        "print(' '.join(f'{x:.6f}' for x in v[:8]))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    mine = embedder.encode_one("How do I connect to the VPN from home?")[:8]
    assert np.allclose([float(x) for x in done.stdout.split()], mine, atol=1e-5)
    assert (folder / "model.onnx").stat().st_mtime_ns == before  # not exported again


def test_export_of_a_small_model_checks_itself_and_handles_padding(tmp_path) -> None:
    """The export path end to end, on a tiny BERT made here (seconds, not the real model's
    export): fp32 equals torch, int8 is close, a damaged export is made again."""
    from retrieval.onnx_embedder import OnnxEmbedder

    model_dir = tiny_model(tmp_path / "tiny-model")
    cache = tmp_path / "cache"
    fp32 = OnnxEmbedder.for_model(str(model_dir), "onnx-fp32", cache)
    torch_model = make_embedder(str(model_dir), "torch")
    texts = ["hello world", "a longer sentence about the VPN and the wiki " * 5, "x"]
    assert np.abs(fp32.encode(texts) - torch_model.encode(texts)).max() < 1e-5
    int8 = OnnxEmbedder.for_model(str(model_dir), "onnx-int8", cache)
    assert int8.folder == fp32.folder and int8.model_id.endswith("+int8")
    assert np.sum(int8.encode(texts) * torch_model.encode(texts), axis=1).min() > 0.9
    (fp32.folder / "model-int8.onnx").write_bytes(b"not a model")
    repaired = OnnxEmbedder.for_model(str(model_dir), "onnx-int8", cache)
    assert np.allclose(repaired.encode(texts), int8.encode(texts), atol=1e-6)


def tiny_model(path: Path) -> Path:
    """A 2-layer, 32-wide BERT with random weights and the bundled model's tokenizer, saved as a
    sentence-transformers folder (max 32 tokens)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import BertConfig, BertModel

    from retrieval.embeddings import default_model_path

    torch.manual_seed(0)
    bundled = SentenceTransformer(default_model_path(), device="cpu")
    config = BertConfig(vocab_size=bundled.tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    raw = path.parent / f"{path.name}-bert"
    BertModel(config).save_pretrained(str(raw))
    bundled.tokenizer.save_pretrained(str(raw))
    transformer = models.Transformer(str(raw), max_seq_length=32)
    model = SentenceTransformer(modules=[transformer, models.Pooling(32, "mean"), models.Normalize()], device="cpu")
    model.save(str(path))
    return path


def test_torch_threads_sleep_when_idle_unless_the_operator_says_otherwise() -> None:
    """OpenMP threads that spin while waiting slowed query-encoder training 20x on a busy machine:
    importing askloop's retrieval sets the passive wait policy before torch can load."""
    code = "import os, retrieval, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "ACTIVE"
