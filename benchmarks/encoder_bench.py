"""What a tuned query encoder costs: building it from a payload, its size, and per question.

A question within the encoder's reach is encoded twice (the base vector, which memories compare
and the bot stores, and the tuned one it searches with); this prints both times per question on
one thread, as the bot encodes a question, plus the one-off merge when a version is first used.
The LoRA weights are trained for real, on 64 made-up (question, document) pairs.

    .venv/bin/python benchmarks/encoder_bench.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feedback.encoder_tuning import EncoderTraining, train_query_encoder  # noqa: E402
from feedback.learning import Memory  # noqa: E402
from retrieval.embeddings import shared_embedder  # noqa: E402
from retrieval.learned import decode_matrix, encode_matrix  # noqa: E402
from retrieval.query_encoder import QueryEncoder  # noqa: E402

TOPICS = ["password", "VPN", "expenses", "holidays", "laptop", "deploy", "on-call", "printer"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    embedder = shared_embedder(None)
    docs = [f"doc{i}" for i in range(len(TOPICS))]
    chunks = embedder.encode([f"All about the {t}: how to request, fix and renew it." for t in TOPICS])
    questions = [f"question {k} about my {TOPICS[k % len(TOPICS)]}" for k in range(64)]
    vectors = dict(zip(questions, embedder.encode(questions)))
    memories = [Memory(q, docs[k % len(docs)], 1.0, "vote", f"a{k}", f"u{k}") for k, q in enumerate(questions)]
    started = time.perf_counter()
    config = EncoderTraining(min_pairs=8)
    result = train_query_encoder(memories, vectors, embedder.sentence_transformer, lambda: (docs, chunks), config)
    print(f"training on {len(memories)} pairs: {time.perf_counter() - started:.1f}s")
    assert result.weights is not None, result.note
    block = {name: encode_matrix(w) for name, w in result.weights.items()}
    size = len(json.dumps(block))
    count = sum(w.size for w in result.weights.values())
    print(f"LoRA update: {count:,} numbers, {size / 1e6:.2f} MB in the payload (base64 float16)")
    started = time.perf_counter()
    encoder = QueryEncoder(embedder.sentence_transformer, config.shape, {n: decode_matrix(b) for n, b in block.items()})
    print(f"merge into a private model copy (first use of a version): {time.perf_counter() - started:.2f}s")
    asked = [f"How do I {verb} the {topic} for my team?" for verb in ("renew", "fix", "reset") for topic in TOPICS] * 9
    base_ms, tuned_ms = [], []
    for question in asked:
        t0 = time.perf_counter()
        embedder.encode_one(question)
        t1 = time.perf_counter()
        encoder.encode([question])
        t2 = time.perf_counter()
        base_ms.append((t1 - t0) * 1000)
        tuned_ms.append((t2 - t1) * 1000)
    for label, values in (("base encode", base_ms), ("tuned encode", tuned_ms)):
        print(f"{label}: p50 {statistics.median(values):.1f} ms, p99 {percentile(values, 0.99):.1f} ms "
              f"over {len(values)} questions")


if __name__ == "__main__":
    main()
