"""What a question's embedding costs on each backend, and what a tuned query encoder costs.

1. One question at a time, as the bot embeds one (one thread), on each backend: p50 and p99 by
   wall clock and the p50 of this process's CPU time, over the evaluation sets' questions, the
   backends taking turns on every question so background load hits them alike; then each
   backend's speed-up over torch.
2. A tuned query encoder: LoRA weights trained for real (on torch, as learning does) on 64
   made-up (question, document) pairs; then, per backend, making the encoder from the payload
   (torch: merging; ONNX: merging, exporting and, for int8, quantising, into an empty folder, as
   the first process to use a version does), its time per question and how close its vectors
   are to torch's.

    .venv/bin/python benchmarks/encoder_bench.py [--backends torch onnx-fp32 onnx-int8] [--questions 400]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.settings import default_model_cache  # noqa: E402
from feedback.encoder_tuning import EncoderTraining, train_query_encoder  # noqa: E402
from feedback.learning import Memory  # noqa: E402
from retrieval.embeddings import shared_embedder  # noqa: E402
from retrieval.learned import decode_matrix, encode_matrix  # noqa: E402
from retrieval.onnx_embedder import OnnxEmbedder  # noqa: E402
from retrieval.query_encoder import tuned_query_encoder  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TOPICS = ["password", "VPN", "expenses", "holidays", "laptop", "deploy", "on-call", "printer"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def questions(limit: int) -> list[str]:
    found = []
    for name in ("covid-qa", "stackfaq"):
        path = DATA / name / "queries.jsonl"
        if path.exists():
            found += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]
    found = found or [f"How do I {v} the {t} for my team?" for v in ("renew", "fix", "reset") for t in TOPICS]
    return (found * (limit // len(found) + 1))[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx-fp32", "onnx-int8"])
    parser.add_argument("--questions", type=int, default=400)
    args = parser.parse_args()
    backends = ["torch"] + [b for b in args.backends if b != "torch"]
    embedders = {b: shared_embedder(None, b, default_model_cache()) for b in backends}
    asked = questions(args.questions)
    wall: dict[str, list[float]] = {b: [] for b in backends}
    cpu: dict[str, list[float]] = {b: [] for b in backends}
    for e in embedders.values():  # warm-up: first calls allocate
        for q in asked[:20]:
            e.encode_one(q)
    for i, question in enumerate(asked):
        turn = backends[i % len(backends):] + backends[: i % len(backends)]
        for backend in turn:
            t0, c0 = time.perf_counter(), time.process_time()
            embedders[backend].encode_one(question)
            wall[backend].append((time.perf_counter() - t0) * 1000)
            cpu[backend].append((time.process_time() - c0) * 1000)
    print(f"one question at a time, {len(asked)} questions, load average {os.getloadavg()[0]:.1f}:")
    torch_p50, torch_cpu = statistics.median(wall["torch"]), statistics.median(cpu["torch"])
    for backend in backends:
        p50, c50 = statistics.median(wall[backend]), statistics.median(cpu[backend])
        print(f"  {backend:<10} p50 {p50:.2f} ms, p99 {percentile(wall[backend], 0.99):.2f} ms, CPU p50 {c50:.2f} ms; "
              f"{torch_p50 / p50:.2f}x torch by wall clock, {torch_cpu / c50:.2f}x by CPU time")

    torch_embedder = embedders["torch"]
    docs = [f"doc{i}" for i in range(len(TOPICS))]
    chunks = torch_embedder.encode([f"All about the {t}: how to request, fix and renew it." for t in TOPICS])
    taught = [f"question {k} about my {TOPICS[k % len(TOPICS)]}" for k in range(64)]
    vectors = dict(zip(taught, torch_embedder.encode(taught)))
    memories = [Memory(q, docs[k % len(docs)], 1.0, "vote", f"a{k}", f"u{k}") for k, q in enumerate(taught)]
    config = EncoderTraining(min_pairs=8)
    started = time.perf_counter()
    result = train_query_encoder(memories, vectors, torch_embedder.sentence_transformer, lambda: (docs, chunks), config)
    print(f"\ntuned query encoder: training on {len(memories)} pairs (torch) {time.perf_counter() - started:.1f} s")
    assert result.weights is not None, result.note
    block = {name: encode_matrix(w) for name, w in result.weights.items()}
    print(f"  LoRA update: {sum(w.size for w in result.weights.values()):,} numbers, "
          f"{len(json.dumps(block)) / 1e6:.2f} MB in the payload (base64 float16)")
    weights = {n: decode_matrix(b) for n, b in block.items()}
    probe = asked[:120]
    reference = None
    with tempfile.TemporaryDirectory(prefix="askloop-tuned-") as tmp:
        for backend in backends:
            base = embedders[backend]
            if isinstance(base, OnnxEmbedder):  # an empty folder: the first use of a version
                base = OnnxEmbedder(None, backend, base.folder, Path(tmp) / backend)
            started = time.perf_counter()
            encoder = tuned_query_encoder(base, config.shape, weights)
            made = time.perf_counter() - started
            encoder.encode(probe[:10])
            times = []
            for question in probe:
                t0 = time.perf_counter()
                encoder.encode([question])
                times.append((time.perf_counter() - t0) * 1000)
            tuned = encoder.encode(probe)
            if reference is None:
                reference = tuned
            agreement = np.sum(tuned * reference, axis=1)
            print(f"  {backend:<10} made in {made:.1f} s (first use of a version); per question p50 "
                  f"{statistics.median(times):.2f} ms; cosine to torch's tuned vectors min {agreement.min():.4f} "
                  f"mean {agreement.mean():.4f}")


if __name__ == "__main__":
    main()
