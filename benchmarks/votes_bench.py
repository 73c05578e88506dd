"""Votes recorded per second with concurrent writers, on SQLite and on PostgreSQL.

Each writer is a separate process (like separate bot replicas) with its own FeedbackStore; each
vote is one full transaction (validation, upsert of the current vote, raw VoteEvent, AuditEvent).
Afterwards the database is checked: every vote arrived, one current vote per (answer, user).

    .venv/bin/python benchmarks/votes_bench.py [--writers 8] [--votes 400] [--backend sqlite,postgres]

Target: >= 1,000 votes/s on PostgreSQL from 8 concurrent writers, none lost.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from feedback.db import make_engine  # noqa: E402
from feedback.store import FeedbackStore  # noqa: E402
from feedback.validation import VotePolicy  # noqa: E402
from retrieval.types import Hit  # noqa: E402

PG_URL = os.environ.get("ASKLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ANSWERS = 50
POLICY = VotePolicy(max_votes_per_hour=1_000_000)


def target(writer: int, n: int) -> tuple[int, str]:
    """(answer index, user) of a writer's n-th vote: every 5th one changes the vote cast 4 before."""
    m = n - 4 if n % 5 == 4 else n
    return m % ANSWERS, f"W{writer}-U{m}"


def _server_cpu(store: FeedbackStore) -> float:
    """CPU seconds used so far by the PostgreSQL backend serving this writer (0 for SQLite)."""
    if store.engine.dialect.name != "postgresql":
        return 0.0
    with store.engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # the server runs elsewhere
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _writer(url: str, writer: int, votes: int, answer_ids: list[int], start: mp.Barrier, results: mp.Queue) -> None:
    # one connection per writer, so its server process can be measured
    pool = {} if url.startswith("sqlite") else {"pool_size": 1, "max_overflow": 0}
    store = FeedbackStore(url, policy=POLICY, engine=make_engine(url, **pool))
    store.votes.cast(answer_ids[0], f"warmup-{writer}", 1)  # open the pool before the clock starts
    server_before = _server_cpu(store)
    start.wait()
    cpu_before = time.process_time()
    began = time.perf_counter()
    for n in range(votes):
        answer_index, user = target(writer, n)
        store.votes.cast(answer_ids[answer_index], user, 1 if n % 3 else -1, source="bench")
    ended = time.perf_counter()
    results.put((writer, began, ended, time.process_time() - cpu_before, _server_cpu(store) - server_before))
    store.close()


def run(url: str, writers: int, votes: int) -> dict[str, float]:
    store = FeedbackStore(url, policy=POLICY)
    store.upgrade()
    hits = [Hit(doc_id=f"d{i}", title="t", source="s", score=0.5, passage="p") for i in range(5)]
    answer_ids = [
        store.answers.record(question=f"q{i}", asker="asker", origin="bench", hits=hits, answer_text="a",
                            abstained=False, tuning_version=None).id
        for i in range(ANSWERS)
    ]
    context = mp.get_context("spawn")
    barrier, results = context.Barrier(writers), context.Queue()
    procs = [context.Process(target=_writer, args=(url, w, votes, answer_ids, barrier, results)) for w in range(writers)]
    for p in procs:
        p.start()
    spans = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    elapsed = max(s[2] for s in spans) - min(s[1] for s in spans)
    total = writers * votes
    client_cpu = sum(s[3] for s in spans)
    server_cpu = sum(s[4] for s in spans)
    with store.engine.connect() as conn:
        events = conn.execute(text("SELECT count(*) FROM vote_event WHERE source = 'bench'")).scalar_one()
        pairs = conn.execute(text("SELECT count(*) FROM vote WHERE source = 'bench'")).scalar_one()
        distinct = conn.execute(text("SELECT count(DISTINCT answer_id || '/' || user_id) FROM vote WHERE source = 'bench'")).scalar_one()
    store.close()
    expected_pairs = 0
    for w in range(writers):
        expected_pairs += len({target(w, n) for n in range(votes)})
    return {
        "votes": total, "seconds": elapsed, "votes_per_s": total / elapsed,
        "cpu_ms_per_vote": 1000 * (client_cpu + server_cpu) / total,
        "client_cpu_ms": 1000 * client_cpu / total, "server_cpu_ms": 1000 * server_cpu / total,
        "lost": total - events, "current": pairs, "expected_current": expected_pairs, "duplicates": pairs - distinct,
    }


def _pg_database() -> tuple[str, str]:
    import psycopg

    name = f"askloop_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_URL.rpartition('/')[0]}/{name}", name


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--votes", type=int, default=400, help="votes per writer")
    parser.add_argument("--backend", default="sqlite,postgres")
    args = parser.parse_args()
    ok = True
    print(f"{args.writers} writer processes x {args.votes} votes, {os.cpu_count()} CPU(s)")
    for backend in args.backend.split(","):
        if backend == "sqlite":
            tmp = tempfile.TemporaryDirectory()
            url, cleanup = f"sqlite:///{tmp.name}/bench.db", tmp.cleanup
        else:
            try:
                url, name = _pg_database()
            except Exception as exc:
                print(f"postgres: skipped ({exc.__class__.__name__}: {exc})")
                continue
            cleanup = lambda name=name: _drop(name)  # noqa: E731
        try:
            r = run(url, args.writers, args.votes)
        finally:
            cleanup()
        good = r["lost"] == 0 and r["duplicates"] == 0 and r["current"] == r["expected_current"]
        ok &= good
        print(
            f"{backend:9s} {r['votes']:6d} votes in {r['seconds']:6.2f}s = {r['votes_per_s']:7.0f} votes/s; "
            f"lost {r['lost']}, duplicates {r['duplicates']}, current votes {r['current']}/{r['expected_current']}"
            + ("" if good else "  <-- INCONSISTENT")
        )
        cpus = os.cpu_count() or 1
        print(
            f"{'':9s} CPU per vote: {r['cpu_ms_per_vote']:.2f} ms (client {r['client_cpu_ms']:.2f} + "
            f"server {r['server_cpu_ms']:.2f}); CPU-bound ceiling on {cpus} idle core(s): "
            f"{1000 * cpus / r['cpu_ms_per_vote']:,.0f} votes/s; load average now {os.getloadavg()[0]:.1f}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
