"""Query latency of the knowledge base: embed + search + rank + compose, at 10k and 100k chunks,
by vectors alone and hybrid (vectors + keyword scores), on each embedding backend, side by side
with a plain LangChain retriever on the same collection, and what building the keyword index costs.

Embedding 100k chunks with the real model would take hours on a 2-core machine, so the store is
filled with synthetic but realistic vectors: real embeddings of real chunks (the evaluation
corpora) plus small Gaussian noise, re-normalised, so neighbourhoods are as crowded as in a real
index. The text stored with them is real text too. Every query then takes the real path: the
real model embeds the question, Chroma searches, chunks fold to documents, keyword scores are
added, an active tuning (memories of 200 questions) re-ranks, the extractive answer is composed.
Every synthetic document has a commit record, as ingest writes them, so each search pays the
check that what it found is committed.

With `--peer` (the default), the same questions also go, in the same process and taking turns
question by question, through LangChain's `Chroma` vector store with `HuggingFaceEmbeddings` (the
same model on sentence-transformers) on the same collection — `as_retriever(k=5).invoke(question)`.
Those two packages are not askloop's dependencies: they are installed, pinned and without their
dependencies (all already present), into benchmarks/.peer/, which only this script puts on its
path.

    .venv/bin/python benchmarks/query_bench.py [--sizes 10000 100000] [--queries 300]
        [--backends onnx-fp32 onnx-int8 torch] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval.answer import extractive_answer  # noqa: E402
from bot.settings import Settings, default_model_cache  # noqa: E402
from retrieval.embeddings import default_model_path, shared_embedder  # noqa: E402
from retrieval.learned import LearnedTuning, MemoryParams  # noqa: E402
from retrieval.lexical import LexicalIndex  # noqa: E402
from retrieval.search import KnowledgeBase  # noqa: E402
from retrieval.store import ChunkStore, open_client  # noqa: E402
from retrieval.types import Chunk  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NOISE = 0.35  # per-vector noise norm relative to the seed vector: keeps clusters, breaks ties
PEER_DIR = Path(__file__).resolve().parent / ".peer"
PEER_PACKAGES = ["langchain-chroma==1.1.0", "langchain-huggingface==1.2.3"]


def peer_path() -> Path:
    """benchmarks/.peer/ with the peer's two packages (installed once, without dependencies:
    chromadb, sentence-transformers and langchain-core are askloop's own, so no torch is pulled)."""
    marker = PEER_DIR / ("+".join(PEER_PACKAGES) + ".installed")
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(PEER_DIR),
                        *PEER_PACKAGES], check=True)
        marker.write_text("")
    return PEER_DIR


PEER = "LangChain Chroma + HuggingFaceEmbeddings"
PEER_ONE_THREAD = "the same, torch on one thread"


class Peer:
    """LangChain's plain retriever over the same collection: as it comes, and with torch held to
    one thread per question (on a busy machine two threads wait on each other, see
    retrieval/embeddings.py), so the comparison is with the peer at its best."""

    def __init__(self, client: Any, collection: str, k: int = 5) -> None:
        sys.path.insert(0, str(peer_path()))
        from langchain_chroma import Chroma
        from langchain_huggingface import HuggingFaceEmbeddings

        embeddings = HuggingFaceEmbeddings(model_name=default_model_path(), encode_kwargs={"normalize_embeddings": True})
        self.retriever = Chroma(client=client, collection_name=collection, embedding_function=embeddings).as_retriever(
            search_kwargs={"k": k}
        )

    def ask(self, question: str) -> list[Any]:
        return self.retriever.invoke(question)

    def ask_on_one_thread(self, question: str) -> list[Any]:
        from retrieval.torch_embedder import intra_op_threads

        with intra_op_threads(1):
            return self.retriever.invoke(question)


def seed_texts() -> tuple[list[str], list[str], list[str]]:
    """Real passages and titles to seed the synthetic index, and real questions to ask."""
    texts, titles, questions = [], [], []
    for name in ("stackfaq", "covid-qa"):
        corpus = DATA / name / "corpus.jsonl"
        if corpus.exists():
            for line in corpus.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                texts.append(record["text"][:600])
                titles.append(record["title"])
        queries = DATA / name / "queries.jsonl"
        if queries.exists():
            questions += [json.loads(line)["text"] for line in queries.read_text().splitlines()]
    if not texts:  # no evaluation data on this machine: fall back to generated sentences
        rng = np.random.default_rng(0)
        words = "deploy laptop vpn expense holiday pager incident wiki build review release".split()
        texts = [" ".join(rng.choice(words, 60)) for _ in range(300)]
        titles = [f"Topic {i}" for i in range(300)]
        questions = [" ".join(rng.choice(words, 6)) + "?" for _ in range(300)]
    return texts, titles, questions


def tuning_for(embedder: Any, questions: list[str], size: int) -> LearnedTuning:
    """An active tuning as learning makes one: memories of 200 questions, on documents of the store."""
    rng = np.random.default_rng(2)
    remembered = questions[:200]
    docs = [f"d{int(i)}" for i in rng.integers(0, size // 4, len(remembered))]
    return LearnedTuning(version=1, params=MemoryParams(), questions=embedder.encode(remembered),
                         memory_question=np.arange(len(remembered)), memory_doc=docs,
                         memory_weight=rng.choice([1.0, 1.0, 1.0, -1.0], len(remembered)))


def measure(paths: dict[str, Any], questions: list[str], runs: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Milliseconds per question of each path, by wall clock and by this process's CPU time; the
    paths take turns on every question (in rotating order) so background load hits them alike.

    CPU time is what the query costs; wall clock is what a user waits, and on a shared machine
    it includes waiting for other programs.
    """
    names = list(paths)
    for question in questions[:20]:  # warm-up: first calls load caches and lazy code paths
        for name in names:
            paths[name](question)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for i in range(runs):
        question = questions[i % len(questions)]
        for name in names[i % len(names):] + names[: i % len(names)]:
            start, cpu_start = time.perf_counter(), time.process_time()
            paths[name](question)
            wall[name].append((time.perf_counter() - start) * 1000)
            cpu[name].append((time.process_time() - cpu_start) * 1000)
    return {n: (np.array(wall[n]), np.array(cpu[n])) for n in names}


def askloop_path(kb: KnowledgeBase, tuning: Any) -> Any:
    def ask(question: str) -> None:
        extractive_answer(question, kb.search(question, 5, tuning).hits, 0.35)
    return ask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--backends", nargs="+", default=["onnx-fp32", "onnx-int8", "torch"])
    parser.add_argument("--no-peer", action="store_true", help="skip the LangChain retriever")
    args = parser.parse_args()

    embedders = {b: shared_embedder(None, b, default_model_cache()) for b in args.backends}
    exact = next((e for e in embedders.values() if not e.model_id.endswith("+int8")), None)
    exact = exact or shared_embedder(None, "onnx-fp32", default_model_cache())
    texts, titles, questions = seed_texts()
    seeds = exact.encode([f"{t}\n{x}" for t, x in zip(titles, texts)])
    rng = np.random.default_rng(1)
    rng.shuffle(questions)
    hybrid = Settings.model_fields["lexical_weight"].default

    with tempfile.TemporaryDirectory(prefix="askloop-qbench-") as tmp:
        client = open_client(Path(tmp) / "chroma", None)
        store = ChunkStore(client, "bench")
        store.mark_embedding(exact.model_id, exact.backend)
        peer = None if args.no_peer else Peer(client, "bench")
        filled = 0
        for size in sorted(args.sizes):
            seconds = fill_to(store, filled, size, seeds, texts, titles)
            filled = size
            start = time.perf_counter()
            index = LexicalIndex(store.searchable_texts())
            print(f"{size:>7,} chunks (filled in {seconds:.0f} s): keyword index built in {time.perf_counter() - start:.1f} s "
                  f"({len(index):,} chunks read back from the store and indexed)")
            saved = Path(tmp) / "keywords" / str(size)
            index.save(saved)
            start = time.perf_counter()
            LexicalIndex.load(saved)
            print(f"{size:>7,} chunks: saved keyword index loaded in {time.perf_counter() - start:.2f} s "
                  "(what the next process on this data dir pays)")
            reads = record_reads(store, size, args.queries)
            print(f"{size:>7,} chunks: commit records of 50 documents read in p50 {np.percentile(reads, 50):.2f} ms, "
                  f"p99 {np.percentile(reads, 99):.2f} ms (part of every search)")
            paths: dict[str, Any] = {}
            for backend, embedder in embedders.items():
                tuning = tuning_for(embedder, questions, size)
                paths[f"askloop {backend}, full path"] = askloop_path(KnowledgeBase(store, embedder, lexical_weight=hybrid), tuning)
                paths[f"askloop {backend}, vectors only"] = askloop_path(KnowledgeBase(store, embedder, lexical_weight=0.0), None)
                paths[f"{backend} question embedding alone"] = embedder.encode_one
            if peer is not None:
                paths[PEER] = peer.ask
                paths[PEER_ONE_THREAD] = peer.ask_on_one_thread
            results = measure(paths, questions, args.queries)
            print(f"{size:>7,} chunks, {args.queries} questions each, taking turns; load average {os.getloadavg()[0]:.1f}:")
            for name, (ms, cpu) in results.items():
                print(f"  {name:<44} p50 {np.percentile(ms, 50):6.1f} ms, p90 {np.percentile(ms, 90):6.1f} ms, "
                      f"p99 {np.percentile(ms, 99):6.1f} ms; CPU p50 {np.percentile(cpu, 50):5.1f} ms")
            if peer is not None:
                best = min(np.percentile(results[p][0], 50) for p in (PEER, PEER_ONE_THREAD))
                for backend in embedders:
                    full = np.percentile(results[f"askloop {backend}, full path"][0], 50)
                    print(f"  askloop's full path on {backend} at {size:,} chunks: {best / full:.2f}x the speed of the "
                          f"LangChain retriever at its best (p50 {full:.1f} ms against {best:.1f} ms)")


def fill_to(store: ChunkStore, have: int, want: int, seeds, texts, titles) -> float:
    """Grow the synthetic index from `have` to `want` chunks (ids continue where they stopped)."""
    if want <= have:
        return 0.0
    start = time.perf_counter()
    rng = np.random.default_rng(want)
    step = 5000
    for offset in range(have, want, step):
        n = min(step, want - offset)
        pick = rng.integers(0, len(seeds), n)
        noise = rng.standard_normal((n, seeds.shape[1])).astype(np.float32)
        noise *= NOISE / np.linalg.norm(noise, axis=1, keepdims=True)
        vectors = seeds[pick] + noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        chunks = [
            Chunk(
                chunk_id=f"c{offset + i}",
                doc_id=f"d{(offset + i) // 4}",  # four chunks per document, like real docs
                text=texts[p],
                title=titles[p],
                source=f"synthetic/{(offset + i) // 4}.md",
                position=(offset + i) % 4,
                fingerprint="synthetic",
            )
            for i, p in enumerate(pick)
        ]
        store.upsert(chunks, vectors, staged=True)
        store.commit({chunk.doc_id: chunk.fingerprint for chunk in chunks})  # as ingest does
    return time.perf_counter() - start


def record_reads(store: ChunkStore, size: int, runs: int) -> np.ndarray:
    """Milliseconds to read the commit records of 50 documents: what every search (and every
    read of keyword candidates) adds to check that the chunks it found are committed."""
    rng = np.random.default_rng(size)
    documents = size // 4
    for _ in range(20):
        store.committed([f"d{i}" for i in rng.choice(documents, 50, replace=False)])
    took = []
    for _ in range(runs):
        doc_ids = [f"d{i}" for i in rng.choice(documents, 50, replace=False)]
        start = time.perf_counter()
        store.committed(doc_ids)
        took.append(time.perf_counter() - start)
    return np.array(took) * 1000


if __name__ == "__main__":
    main()
