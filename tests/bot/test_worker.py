"""Background learning: once across replicas (a database lock), never in the way of answers."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from bot.worker import Backlog, LearningWorker, backlog, is_due
from feedback.config import LoopConfig
from feedback.loop import FeedbackLoop
from tests.support.feedback import NoKnowledgeBase
from retrieval.types import Hit
from tests.support.ops import scratch_database


def hits() -> list[Hit]:
    return [Hit("vpn", "VPN", "vpn.md", 0.8, "Use WireGuard.", "vpn#0", "", 0.8)]


def record(store, question="vpn?", asker="UASK"):
    return store.answers.record(question=question, asker=asker, origin="test", hits=hits(),
                               answer_text="Use WireGuard.", abstained=False, tuning_version=None)


@pytest.fixture(params=["sqlite", "postgres"])
def feedback_store(request, tmp_path):
    from feedback.store import FeedbackStore

    if request.param == "sqlite":
        store = FeedbackStore(f"sqlite:///{tmp_path / 'feedback.db'}")
        store.upgrade()
        yield store
        store.close()
        return
    admin = request.getfixturevalue("postgres_url")
    with scratch_database(admin) as url:
        store = FeedbackStore(url)
        store.upgrade()
        yield store
        store.close()


def loop_of(store):  # type: ignore[no-untyped-def]
    return FeedbackLoop(store, NoKnowledgeBase, LoopConfig(moderators=frozenset({"UMOD"})))


def test_two_workers_run_the_job_once_and_answers_never_wait(feedback_store):
    """Two replicas' workers race; one runs the (slow) job, the other skips; meanwhile the
    store keeps answering and recording votes."""
    answer = record(feedback_store)
    for user in ("U1", "U2", "U3"):
        feedback_store.votes.cast(answer.id, user, +1, source="test")

    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow_job():
        calls.append(threading.current_thread().name)
        started.set()
        assert release.wait(20), "the test never released the job"
        return None

    workers = [LearningWorker(loop_of(feedback_store), slow_job, after_votes=3, interval=0) for _ in range(2)]
    reports: dict[int, object] = {}
    first = threading.Thread(target=lambda: reports.__setitem__(0, workers[0].run_once()), name="replica-a")
    first.start()
    assert started.wait(20)

    # While replica A holds the lock and works: replica B skips, answers and votes go through.
    assert workers[1].run_once().outcome == "skipped_locked"
    during = record(feedback_store, "expenses?")
    assert feedback_store.votes.cast(during.id, "U9", -1, source="test").counted
    assert feedback_store.deliveries.claim("Ev-during-learning")

    release.set()
    first.join(20)
    assert calls == ["replica-a"]
    assert reports[0].outcome == "nothing"
    # The run left its mark: with no new input since, nobody runs again...
    assert workers[1].run_once().outcome == "not_due"
    # ...and the vote cast during the run counts towards the next one.
    assert backlog(feedback_store).new_votes == 1


def test_trigger_after_n_validated_votes_or_on_schedule():
    now = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    nothing = Backlog(now - timedelta(hours=5), 0, 0)
    some = Backlog(now - timedelta(minutes=5), 2, 1)
    assert not is_due(nothing, after_votes=1, interval=60, now=now)  # nothing new: never
    assert is_due(some, after_votes=3, interval=0, now=now)  # 2 votes + 1 correction
    assert not is_due(some, after_votes=4, interval=0, now=now)
    assert not is_due(some, after_votes=4, interval=600, now=now)  # last run 5 minutes ago
    assert is_due(some, after_votes=4, interval=240, now=now)
    assert is_due(Backlog(None, 1, 0), after_votes=0, interval=3600, now=now)  # never ran yet
    assert not is_due(Backlog(None, 1, 0), after_votes=0, interval=0, now=now)  # both off


def test_uncounted_votes_do_not_trigger(feedback_store):
    answer = record(feedback_store, asker="USELF")
    feedback_store.users.flag("UBAD", "UMOD", "spam")
    feedback_store.votes.cast(answer.id, "UBAD", +1, source="test")  # flagged: kept, not counted
    assert backlog(feedback_store).new_votes == 0
    feedback_store.votes.cast(answer.id, "UGOOD", +1, source="test")
    assert backlog(feedback_store).new_votes == 1


def test_a_failing_job_is_reported_and_backs_off(feedback_store):
    answer = record(feedback_store)
    feedback_store.votes.cast(answer.id, "U1", +1, source="test")

    def broken():
        raise RuntimeError("engine exploded")

    worker = LearningWorker(loop_of(feedback_store), broken, after_votes=1, interval=0)
    report = worker.run_once()
    assert report.outcome == "failed" and "engine exploded" in report.detail
    assert worker.run_once().outcome == "not_due"  # marked: no hot loop of failures
    events = [a for a in feedback_store.audit.events() if a.action == "worker.learn"]
    assert len(events) == 1 and events[0].after["outcome"] == "failed"


def test_background_thread_builds_a_real_proposal_from_votes(tiny_services):
    """The real learning engine, run by the worker's thread, turns votes into one proposal."""
    loop = tiny_services.loop
    store = loop.store
    for question, good in (("how do I connect to the VPN?", True), ("vpn setup at home", True),
                           ("when do I hand over on-call?", True)):
        answer_id = loop.answer(question, asker="UASK", origin="test").answer_id
        for user in ("U1", "U2"):
            loop.vote(answer_id, user, +1 if good else -1, source="test")

    worker = LearningWorker.from_settings(loop, tiny_services.settings, after_votes=6, interval=0, poll=0.05)
    worker.start_background()
    try:
        deadline = datetime.now(timezone.utc) + timedelta(seconds=60)
        while backlog(store).last_run is None and datetime.now(timezone.utc) < deadline:
            threading.Event().wait(0.05)
            # Answering goes on while the worker thread works.
            loop.answer("how do I submit expenses?", asker="UASK", origin="test")
    finally:
        worker.stop()
    (proposal,) = store.proposals.find()
    assert proposal.created_by == "worker"
    assert proposal.payload["id"]
    # The evaluation gate ran in the background too: the proposal reaches moderators measured.
    assert proposal.status in ("evaluated", "failing") and proposal.evaluation["golden"] is not None
    # Same feedback again: the identical proposal is not created a second time.
    assert worker.run_once(force=True).outcome == "nothing"
    assert len(store.proposals.find()) == 1


def test_each_run_prunes_delivery_keys_older_than_slacks_retries(feedback_store):
    from sqlalchemy import text

    assert feedback_store.deliveries.claim("Ev-old") and feedback_store.deliveries.claim("Ev-new")
    with feedback_store.engine.begin() as conn:
        conn.execute(text("UPDATE processed_event SET at = :at WHERE event_id = 'Ev-old'"),
                     {"at": datetime.now(timezone.utc) - timedelta(days=3)})
    assert LearningWorker(loop_of(feedback_store), lambda: None, after_votes=1, interval=0).run_once().outcome == "not_due"
    assert feedback_store.deliveries.claim("Ev-old") is True  # pruned, so a key can be seen again
    assert feedback_store.deliveries.claim("Ev-new") is False  # recent keys are kept
