"""Many writers at once: no vote lost, no duplicate, on one SQLite file and on PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from feedback.store import FeedbackStore
from feedback.validation import VotePolicy
from tests.support.feedback import MODERATOR, answer

THREADS = 8


def test_concurrent_votes_lose_nothing_and_duplicate_nothing(store_url):
    store = FeedbackStore(store_url, policy=VotePolicy(max_votes_per_hour=10_000))
    try:
        answers = [answer(store).id for _ in range(3)]
        users = [f"U{n}" for n in range(12)]

        def worker(thread: int) -> int:
            done = 0
            # every thread votes on every (answer, user) pair, so threads collide on each pair
            for a in answers:
                for u in users:
                    store.votes.cast(a, u, 1 if (thread + len(u)) % 2 else -1, source=f"t{thread}")
                    done += 1
            return done

        with ThreadPoolExecutor(THREADS) as pool:
            total = sum(pool.map(worker, range(THREADS)))
        assert total == THREADS * len(answers) * len(users)
        with store.engine.connect() as conn:
            current = conn.execute(text("SELECT count(*), count(DISTINCT answer_id || '/' || user_id) FROM vote")).one()
            events = conn.execute(text("SELECT count(*) FROM vote_event")).scalar_one()
            casts = conn.execute(text("SELECT count(*) FROM vote_event WHERE action = 'cast'")).scalar_one()
            audits = conn.execute(text("SELECT count(*) FROM audit_event WHERE action LIKE 'vote.%'")).scalar_one()
        assert current == (len(answers) * len(users),) * 2  # one current vote per pair, no duplicate
        assert events == total and audits == total  # every raw vote kept and audited
        assert casts >= len(answers) * len(users)  # at least the first per pair is a cast
    finally:
        store.close()


def test_concurrent_distinct_votes_all_arrive(store_url):
    store = FeedbackStore(store_url, policy=VotePolicy(max_votes_per_hour=10_000))
    try:
        answer_id = answer(store).id

        def worker(thread: int) -> None:
            for n in range(20):
                store.votes.cast(answer_id, f"T{thread}-U{n}", 1)

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(worker, range(THREADS)))
        assert len(store.votes.for_answer(answer_id)) == THREADS * 20
    finally:
        store.close()


def test_concurrent_claims_of_one_event_succeed_once(store_url):
    store = FeedbackStore(store_url)
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(lambda _: store.deliveries.claim("Ev-race"), range(THREADS * 4)))
        assert results.count(True) == 1
    finally:
        store.close()


def test_concurrent_applies_make_consecutive_versions(store_url):
    store = FeedbackStore(store_url)
    try:
        ids = []
        for n in range(6):
            p = store.proposals.create(summary=f"p{n}", diff={}, payload={"n": n}, created_by="learner")
            store.proposals.record_evaluation(p.id, {}, True)
            ids.append(p.id)
        with ThreadPoolExecutor(3) as pool:  # approve-and-apply, six at once
            versions = list(pool.map(lambda pid: store.proposals.approve(pid, MODERATOR)[1].number, ids))
        assert sorted(versions) == [1, 2, 3, 4, 5, 6]
        assert store.proposals.active_version().number in versions
    finally:
        store.close()


def test_readers_alongside_writers_never_fail(store_url):
    store = FeedbackStore(store_url, policy=VotePolicy(max_votes_per_hour=10_000))
    try:
        answer_id = answer(store).id

        def writer(thread: int) -> int:
            for n in range(15):
                store.votes.cast(answer_id, f"T{thread}-U{n}", 1)
            return 0

        def reader(_: int) -> int:
            seen = 0
            for _ in range(15):
                seen = max(seen, len(store.votes.for_answer(answer_id)))
                store.reports.stats()
                store.proposals.active_version()
            return seen

        with ThreadPoolExecutor(THREADS) as pool:
            writes = [pool.submit(writer, t) for t in range(4)]
            reads = [pool.submit(reader, t) for t in range(4)]
            assert all(f.result() == 0 for f in writes)
            assert all(0 <= f.result() <= 60 for f in reads)
        assert len(store.votes.for_answer(answer_id)) == 60
    finally:
        store.close()
