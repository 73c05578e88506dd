"""How long learning a proposal takes from 10,000 validated votes (target: under a minute).

Feedback goes through the real store (SQLite in a temporary dir), so the timing covers reading
`training_feedback()`, embedding every distinct question with the real model, collecting and
capping memories, encoding the payload, and decoding it back into a tuning. Also times one
rerank with the resulting 10k-memory tuning (what every question pays).

    .venv/bin/python benchmarks/learning_bench.py [--votes 10000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from feedback.learning import LearningEngine  # noqa: E402
from feedback.store import FeedbackStore  # noqa: E402
from feedback.validation import VotePolicy  # noqa: E402
from retrieval.embeddings import shared_embedder  # noqa: E402
from retrieval.learned import tuning_from_payload  # noqa: E402
from retrieval.types import Hit  # noqa: E402

TOPICS = ["password", "VPN", "expenses", "holidays", "laptop", "deploy", "on-call", "printer", "wiki", "badge"]
FORMS = ["How do I {v} my {t}?", "Where can I {v} the {t}?", "Who can help me {v} {t}?", "Is there a way to {v} {t} today?"]
VERBS = ["reset", "renew", "fix", "request", "change", "set up", "cancel", "report", "find", "update"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--votes", type=int, default=10_000)
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = FeedbackStore(f"sqlite:///{Path(tmp) / 'bench.db'}", policy=VotePolicy(max_votes_per_hour=10**9))
        store.upgrade()
        started = time.perf_counter()
        for i in range(args.votes):
            question = rng.choice(FORMS).format(v=rng.choice(VERBS), t=rng.choice(TOPICS)) + f" (case {i % 2500})"
            docs = rng.sample(range(400), 5)
            hits = [Hit(f"doc{d}", f"Doc {d}", f"doc{d}.md", 0.6 - 0.01 * r, "text", f"doc{d}-0", base_score=0.6)
                    for r, d in enumerate(docs)]
            answer = store.record_answer(question=question, asker=f"asker{i}", origin="bench", hits=hits,
                                         answer_text="x", abstained=False, tuning_version=None)
            store.vote(answer.id, f"user{i % 700}", rng.choice((1, 1, -1)))
        print(f"setup: {args.votes:,} answers + votes recorded in {time.perf_counter() - started:.1f}s")

        embedder = shared_embedder(None)
        embedder.encode(["warm up"])
        started = time.perf_counter()
        feedback = store.training_feedback()
        read_s = time.perf_counter() - started
        engine = LearningEngine(embedder)
        learned = engine.build(feedback)
        build_s = time.perf_counter() - started - read_s
        blob = json.dumps(learned.payload)
        t0 = time.perf_counter()
        tuning = tuning_from_payload(json.loads(blob), 1)
        decode_s = time.perf_counter() - t0
        total = time.perf_counter() - started
        print(f"training_feedback(): {len(feedback.votes):,} counted votes read in {read_s:.2f}s")
        print(f"learn (embed {len({v.question for v in feedback.votes}):,} questions, memories, payload): {build_s:.2f}s")
        print(f"payload: {len(blob) / 1e6:.1f} MB JSON; decoded in {decode_s:.3f}s")
        print(f"TOTAL learning time for {args.votes:,} votes: {total:.1f}s (target < 60s) -> "
              f"{'OK' if total < 60 else 'TOO SLOW'}")

        # Steady state: the worker learns again after 500 more votes; questions already in the
        # active version keep their vectors, so only the new ones are embedded.
        for i in range(args.votes, args.votes + 500):
            question = rng.choice(FORMS).format(v=rng.choice(VERBS), t=rng.choice(TOPICS)) + f" (new {i})"
            hits = [Hit("doc1", "Doc 1", "doc1.md", 0.6, "text", "doc1-0", base_score=0.6)]
            answer = store.record_answer(question=question, asker=f"asker{i}", origin="bench", hits=hits,
                                         answer_text="x", abstained=False, tuning_version=1)
            store.vote(answer.id, f"user{i % 700}", 1)
        started = time.perf_counter()
        again = LearningEngine(embedder)
        again.remember_vectors(learned.payload)
        relearned = again.build(store.training_feedback())
        print(f"incremental: {len(relearned.memories):,} memories (500 new questions) learned in "
              f"{time.perf_counter() - started:.1f}s")

        query = embedder.encode(["How do I reset my password?"])[0]
        candidates = [Hit(f"doc{d}", "", "", float(s), "") for d, s in zip(range(40), np.linspace(0.7, 0.3, 40))]
        t0 = time.perf_counter()
        for _ in range(200):
            tuning.rerank(query, candidates)
        print(f"rerank with {len(learned.memories):,} memories: {(time.perf_counter() - t0) / 200 * 1000:.2f} ms per question")


if __name__ == "__main__":
    main()
