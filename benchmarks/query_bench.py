"""Query latency of the knowledge base: embed + search + rank + compose, at 10k and 100k chunks,
by vectors alone and hybrid (vectors + keyword scores), and what building the keyword index costs.

Embedding 100k chunks with the real model would take hours on a 2-core machine, so the store is
filled with synthetic but realistic vectors: real embeddings of real chunks (the evaluation
corpora) plus small Gaussian noise, re-normalised, so neighbourhoods are as crowded as in a real
index. The text stored with them is real text too. Every query then takes the real path: the
real model embeds the question, Chroma searches, chunks fold to documents, the extractive
answer is composed. Every synthetic document has a commit record, as ingest writes them, so
each search pays the check that what it found is committed.

    .venv/bin/python benchmarks/query_bench.py [--sizes 10000 100000] [--queries 300]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval.answer import extractive_answer  # noqa: E402
from bot.settings import Settings  # noqa: E402
from retrieval.embeddings import shared_embedder  # noqa: E402
from retrieval.lexical import LexicalIndex  # noqa: E402
from retrieval.search import KnowledgeBase  # noqa: E402
from retrieval.store import ChunkStore, open_client  # noqa: E402
from retrieval.types import Chunk  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NOISE = 0.35  # per-vector noise norm relative to the seed vector: keeps clusters, breaks ties


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


def measure(kb: KnowledgeBase, questions: list[str], runs: int, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Milliseconds per question, by wall clock and by this process's CPU time.

    CPU time is what the query costs; wall clock is what a user waits, and on a shared machine
    it includes waiting for other programs.
    """
    for question in questions[:20]:  # warm-up: first calls load caches and lazy code paths
        extractive_answer(question, kb.search(question, k).hits, 0.35)
    wall, cpu = [], []
    for i in range(runs):
        question = questions[i % len(questions)]
        start, cpu_start = time.perf_counter(), time.process_time()
        result = kb.search(question, k)
        extractive_answer(question, result.hits, 0.35)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return np.array(wall) * 1000, np.array(cpu) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()

    embedder = shared_embedder(None)
    texts, titles, questions = seed_texts()
    seeds = embedder.encode([f"{t}\n{x}" for t, x in zip(titles, texts)])
    rng = np.random.default_rng(1)
    rng.shuffle(questions)

    embed_only = []
    for question in questions[:200]:
        start = time.perf_counter()
        embedder.encode_one(question)
        embed_only.append(time.perf_counter() - start)
    embed_ms = np.array(embed_only[20:]) * 1000
    print(f"question embedding alone: p50 {np.percentile(embed_ms, 50):.1f} ms, "
          f"p99 {np.percentile(embed_ms, 99):.1f} ms")

    with tempfile.TemporaryDirectory(prefix="askloop-qbench-") as tmp:
        store = ChunkStore(open_client(Path(tmp) / "chroma", None), "bench")
        filled = 0
        for size in sorted(args.sizes):
            seconds = fill_to(store, filled, size, seeds, texts, titles)
            filled = size
            start = time.perf_counter()
            index = LexicalIndex(store.searchable_texts())
            print(f"{size:>7,} chunks: keyword index built in {time.perf_counter() - start:.1f} s "
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
            for label, weight in (("vectors only", 0.0), ("hybrid", Settings.model_fields["lexical_weight"].default)):
                kb = KnowledgeBase(store, embedder, lexical_weight=weight)
                ms, cpu = measure(kb, questions, args.queries)
                print(
                    f"{size:>7,} chunks (filled in {seconds:.0f} s), {label}: query p50 {np.percentile(ms, 50):.1f} ms, "
                    f"p90 {np.percentile(ms, 90):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, "
                    f"max {ms.max():.1f} ms over {len(ms)} queries; CPU time p50 {np.percentile(cpu, 50):.1f} ms, "
                    f"p99 {np.percentile(cpu, 99):.1f} ms; load average {os.getloadavg()[0]:.1f}"
                )


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
