"""PostgreSQL restarts: the bot's pool notices dead connections and reconnects by itself.

We cannot restart the machine's shared server, so each test gets a database of its own and
terminates every connection to it — exactly what a restart does to the bot's pool.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from retrieval.types import Hit
from tests.support.ops import scratch_database, terminate_other_connections

pytestmark = pytest.mark.postgres


def hits(score: float) -> list[Hit]:
    return [Hit("vpn", "VPN", "vpn.md", score, "Use WireGuard.", "vpn#0", "", score)]


@pytest.fixture()
def pg_store(postgres_url):
    from feedback.store import FeedbackStore

    with scratch_database(postgres_url) as url:
        store = FeedbackStore(url)
        store.upgrade()
        try:
            yield store
        finally:
            store.close()


def test_store_reconnects_after_the_server_drops_every_connection(pg_store, postgres_url):
    answer = pg_store.answers.record(question="vpn?", asker="UA", origin="test", hits=hits(0.8),
                                    answer_text="Use WireGuard.", abstained=False, tuning_version=None)
    pooled = pg_store.engine.pool.checkedin()
    assert pooled >= 1  # an idle connection waits in the pool: the one the "restart" will kill

    assert terminate_other_connections(pg_store.url) >= 1

    # The very next calls succeed: pre-ping replaces the dead connections, no error surfaces.
    assert pg_store.votes.cast(answer.id, "UV", +1, source="test").counted
    assert pg_store.answers.get(answer.id).question == "vpn?"
    assert pg_store.deliveries.claim("Ev-after-restart") is True
    assert pg_store.deliveries.claim("Ev-after-restart") is False


def test_worker_lock_survives_a_dropped_connection(pg_store):
    """Advisory locks die with their session: after a "restart" the lock can be taken again."""
    from feedback.schedule import DatabaseLock

    lock = DatabaseLock(pg_store.engine, "ops-test-lock")
    with lock.try_hold() as held:
        assert held
        with lock.try_hold() as second:
            assert not second  # another session cannot take it
        terminate_other_connections(pg_store.url)
    with lock.try_hold() as again:
        assert again


def test_drift_counts_low_scoring_questions_per_day(pg_store):
    from sqlmodel import Session, update

    from feedback import models

    for score in (0.9, 0.2, 0.1):
        pg_store.answers.record(question=f"q {score}", asker="UA", origin="test", hits=hits(score),
                               answer_text="-", abstained=score < 0.35, tuning_version=None)
    # One question from yesterday, and one answer that showed no source at all.
    old = pg_store.answers.record(question="old", asker="UA", origin="test", hits=hits(0.9),
                                 answer_text="-", abstained=False, tuning_version=None)
    pg_store.answers.record(question="nothing", asker="UA", origin="test", hits=[],
                           answer_text="-", abstained=True, tuning_version=None)
    now = datetime.now(timezone.utc)
    with Session(pg_store.engine) as session:
        session.exec(update(models.Answer).where(models.Answer.id == old.id)
                     .values(created_at=now - timedelta(days=1)))
        session.commit()

    days = pg_store.reports.drift_by_day(0.35, days=3, now=now)
    assert [d.day for d in days] == [(now - timedelta(days=i)).date() for i in (2, 1, 0)]
    assert [(d.questions, d.below_threshold) for d in days] == [(0, 0), (1, 0), (4, 3)]
    assert days[-1].share == pytest.approx(0.75)
    # The threshold matters: at 0.15 only the 0.1 answer and the empty one are below.
    assert pg_store.reports.drift_by_day(0.15, days=1, now=now)[0].below_threshold == 2

    figures = pg_store.reports.gauges(0.35, now=now)
    assert figures["drift_low_score_share"] == pytest.approx(0.75)
    assert figures["questions_today"] == 4
    assert "satisfaction_rate" not in figures  # no votes yet: no rate rather than a fake 0
