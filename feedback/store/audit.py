"""The audit log: who did what, when, to which object — append-only, oldest first when read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from feedback import models as m
from feedback.records import AuditRecord
from feedback.store.base import Database, audit, aware, utc


class AuditLog:
    def __init__(self, database: Database) -> None:
        self.db = database

    def record(self, actor: str, action: str, object_type: str, object_id: object, *,
               before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
               note: str | None = None) -> None:
        """One event on its own (refusals, worker runs); state changes write theirs in their own
        transaction instead."""
        def work(session: Session) -> None:
            audit(session, actor, action, object_type, object_id, before, after, note)

        self.db.write(work)

    def events(self, since: datetime | None = None, limit: int = 200, *, action: str | None = None) -> list[AuditRecord]:
        """The most recent `limit` events (after `since`; of `action` or its family), oldest first."""
        with self.db.reading() as session:
            query = select(m.AuditEvent).order_by(col(m.AuditEvent.id).desc()).limit(max(1, limit))
            if since is not None:
                query = query.where(col(m.AuditEvent.at) >= utc(since))
            if action:
                query = query.where(or_(col(m.AuditEvent.action) == action, col(m.AuditEvent.action).startswith(action + ".")))
            rows = list(session.exec(query).all())
            return [AuditRecord(r.id or 0, aware(r.at), r.actor, r.action, r.object_type, r.object_id,
                                r.before, r.after, r.note) for r in reversed(rows)]

    def last(self, action: str) -> datetime | None:
        """When `action` last happened (e.g. the worker's last learning run)."""
        from sqlalchemy import func

        with self.db.reading() as session:
            return utc(session.exec(select(func.max(m.AuditEvent.at)).where(m.AuditEvent.action == action)).first())
