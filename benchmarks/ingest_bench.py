"""Ingest throughput per embedding backend, and the batch size each encoder runs best at.

1. The whole pipeline — discover and load the files, chunk, compare with the store, embed, write
   to an embedded Chroma store, in a fresh data directory — on each backend, and on torch with the
   batch size askloop used before backends existed (64: "torch@64", today's reference). Rounds
   alternate the order so background load hits all alike. Printed: chunks per second by wall
   clock and per CPU second of this process (which other programs on a busy machine do not
   inflate), each backend's ratio to today's, and the pipeline's speed relative to the same
   encoder embedding exactly the same texts (chunks and titles) bare, right after it.
2. Batch sizes: the same texts (chunks and titles, as ingest embeds them) encoded bare by each
   encoder at several batch sizes, idle and with one core taken by a busy loop (what a shared or
   busy machine leaves), so the defaults are chosen by measurement.

    .venv/bin/python benchmarks/ingest_bench.py [--rounds 3] [--corpus PATH ...] [--no-busy]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.settings import default_model_cache  # noqa: E402
from retrieval.chunking import Chunker  # noqa: E402
from retrieval.embeddings import Embedder, shared_embedder  # noqa: E402
from retrieval.ingest import Ingestor, embedding_text  # noqa: E402
from retrieval.loaders import load_all  # noqa: E402
from retrieval.onnx_embedder import OnnxEmbedder, OnnxRunner  # noqa: E402
from retrieval.store import ChunkStore, open_client  # noqa: E402
from retrieval.torch_embedder import TorchEmbedder  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_CORPORA = [DATA / "covid-qa" / "corpus.jsonl"]
TODAY = "torch@64"


def pipeline_run(embedder: Embedder, paths: list[Path]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds, chunks written: a full ingest into a fresh store."""
    with tempfile.TemporaryDirectory(prefix="askloop-ibench-") as tmp:
        store = ChunkStore(open_client(Path(tmp) / "chroma", None), "bench")
        ingestor = Ingestor(store, embedder, Chunker())
        start, cpu = time.perf_counter(), time.process_time()
        report = ingestor.run(paths)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert store.count() == report.chunks_added
        return seconds, cpu, report.chunks_added


def busy_loop(stop: object) -> None:
    while not stop.is_set():  # type: ignore[attr-defined]
        pass


def bare(encode: object, texts: list[str]) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    encode(texts)  # type: ignore[operator]
    return len(texts) / (time.perf_counter() - start), len(texts) / max(1e-9, time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", type=Path, nargs="+", default=[p for p in DEFAULT_CORPORA if p.exists()])
    parser.add_argument("--no-busy", action="store_true", help="skip the runs with one core taken")
    args = parser.parse_args()
    if not args.corpus:
        sys.exit("no corpus: pass --corpus PATH (files or folders askloop can ingest)")

    cache = default_model_cache()
    embedders: dict[str, Embedder] = {
        TODAY: TorchEmbedder(None, batch_size=64),
        f"torch@{TorchEmbedder.BATCH}": shared_embedder(None, "torch"),
        "onnx-fp32": shared_embedder(None, "onnx-fp32", cache),
        "onnx-int8": shared_embedder(None, "onnx-int8", cache),
    }
    chunker = Chunker()
    chunks = [c for r in load_all(args.corpus) for d in r.documents for c in chunker.split(d)]
    texts = [embedding_text(c) for c in chunks]
    titles = list(dict.fromkeys(c.title for c in chunks if c.title.strip()))
    print(f"corpus: {', '.join(str(p) for p in args.corpus)}; {len(chunks)} chunks, mean "
          f"{sum(map(len, texts)) / len(texts):.0f} characters, plus {len(titles)} titles")
    for embedder in embedders.values():
        embedder.encode(texts[:8])

    names = list(embedders)
    rates: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    overhead: dict[str, list[float]] = {n: [] for n in names}  # pipeline time / bare encode time
    for round_number in range(args.rounds):
        order = names if round_number % 2 == 0 else names[::-1]
        for name in order:
            seconds, cpu, written = pipeline_run(embedders[name], args.corpus)
            rates[name].append((written / seconds, written / cpu))
            start = time.perf_counter()
            embedders[name].encode(sorted(texts + titles, key=len))  # what the pipeline embeds, bare
            overhead[name].append((time.perf_counter() - start) / seconds)
        print(f"round {round_number + 1}: " + ", ".join(f"{n} {rates[n][-1][0]:.1f}/s" for n in names)
              + f"; load average {os.getloadavg()[0]:.1f}")
    today_wall = statistics.median(r[0] for r in rates[TODAY])
    today_cpu = statistics.median(r[1] for r in rates[TODAY])
    print("whole pipeline, median chunks per second (by wall clock; per CPU second), ratio to today's (torch@64):")
    for name in names:
        wall, cpu = statistics.median(r[0] for r in rates[name]), statistics.median(r[1] for r in rates[name])
        print(f"  {name:<10} {wall:6.1f}/s ({cpu:6.1f}/CPU s)  {wall / today_wall:.2f}x ({cpu / today_cpu:.2f}x by CPU); "
              f"pipeline at {statistics.median(overhead[name]):.2f}x the speed of the bare encoder on the same texts")

    sample = texts[: min(len(texts), 160)] + titles[:40]
    fp32 = embedders["onnx-fp32"]
    int8 = embedders["onnx-int8"]
    assert isinstance(fp32, OnnxEmbedder) and isinstance(int8, OnnxEmbedder)
    runners = {"onnx-fp32": OnnxRunner(fp32.folder, "fp32"), "onnx-int8": OnnxRunner(int8.folder, "int8")}
    torch_model = embedders[TODAY]
    variants: list[tuple[str, object]] = [
        (f"torch batch {b}", lambda t, b=b: torch_model.encode(t, b)) for b in (16, 32, 64)
    ] + [
        (f"{name} batch {b}", lambda t, r=runner, b=b: r.encode(t, b))
        for name, runner in runners.items() for b in (1, 8, 32)
    ]
    conditions = [("idle", False)] + ([] if args.no_busy else [("one core taken", True)])
    print(f"\nbare encoders on {len(sample)} texts, chunks per second (wall; per CPU second), median of {args.rounds}:")
    for label, busy in conditions:
        stop = multiprocessing.Event()
        hog = multiprocessing.Process(target=busy_loop, args=(stop,), daemon=True) if busy else None
        if hog:
            hog.start()
        try:
            results: dict[str, list[tuple[float, float]]] = {n: [] for n, _ in variants}
            for round_number in range(args.rounds):
                for name, encode in (variants if round_number % 2 == 0 else variants[::-1]):
                    results[name].append(bare(encode, sample))
        finally:
            stop.set()
            if hog:
                hog.join(5)
        print(f"  {label} (load average {os.getloadavg()[0]:.1f}):")
        for name, _ in variants:
            wall = statistics.median(r[0] for r in results[name])
            cpu = statistics.median(r[1] for r in results[name])
            print(f"    {name:<22} {wall:6.1f}/s ({cpu:6.1f}/CPU s)")


if __name__ == "__main__":
    main()
