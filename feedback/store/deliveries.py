"""Idempotency: the keys of deliveries already processed, so a retry is processed once.

A Slack event id, an interaction's trigger id, a review-channel post: whatever must happen once
across retries and replicas is claimed here by key. Keys are kept for a few days (Slack retries
within minutes; a signed request older than five minutes is refused anyway) and then pruned by
the background worker, so the table does not grow forever.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlmodel import Session, col

from feedback import models as m
from feedback.errors import InvalidFeedback
from feedback.store.base import Database, now

KEEP = timedelta(days=2)


class Deliveries:
    def __init__(self, database: Database) -> None:
        self.db = database

    def claim(self, key: str) -> bool:
        """True the first time `key` is seen (by any replica), False for a repeat."""
        if not key:
            raise InvalidFeedback("a delivery key is required")

        def work(session: Session) -> bool:
            statement = self.db.upsert(m.ProcessedEvent).values(event_id=key[:200], at=now())
            statement = statement.on_conflict_do_nothing(index_elements=["event_id"])
            return session.execute(statement.returning(col(m.ProcessedEvent.event_id))).first() is not None

        return self.db.write(work)

    def release(self, key: str) -> bool:
        """Forget a claim whose work failed before anything was promised (so a retry runs it)."""
        def work(session: Session) -> bool:
            result = session.execute(delete(m.ProcessedEvent).where(col(m.ProcessedEvent.event_id) == key[:200]))
            return bool(result.rowcount)  # type: ignore[attr-defined]

        return self.db.write(work)

    def prune(self, older_than: timedelta = KEEP) -> int:
        """Drop keys older than `older_than`; returns how many."""
        def work(session: Session) -> int:
            result = session.execute(delete(m.ProcessedEvent).where(col(m.ProcessedEvent.at) < now() - older_than))
            return int(result.rowcount)  # type: ignore[attr-defined]

        return self.db.write(work)
