"""Flagged users: their votes are still stored but count zero for learning and satisfaction."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from feedback import models as m
from feedback.errors import InvalidFeedback, NotFound
from feedback.store.base import Database, audit, now, utc


class Users:
    def __init__(self, database: Database) -> None:
        self.db = database

    def flag(self, user: str, moderator: str, reason: str = "") -> None:
        """From now on `user`'s votes count zero (they are still stored)."""
        if not user:
            raise InvalidFeedback("which user? give a user id")

        def work(session: Session) -> None:
            row = session.get(m.FlaggedUser, user)
            before = None if row is None else {"reason": row.reason, "flagged_by": row.flagged_by}
            if row is None:
                row = m.FlaggedUser(user_id=user, reason=reason or "", flagged_by=moderator)
            else:
                row.reason, row.flagged_by, row.flagged_at = reason or row.reason, moderator, now()
            session.add(row)
            audit(session, moderator, "user.flag", "user", user, before=before,
                  after={"reason": row.reason, "flagged_by": moderator})

        self.db.write(work)

    def unflag(self, user: str, moderator: str) -> None:
        def work(session: Session) -> None:
            row = session.get(m.FlaggedUser, user)
            if row is None:
                raise NotFound(f"{user} is not flagged")
            before = {"reason": row.reason, "flagged_by": row.flagged_by}
            session.delete(row)
            audit(session, moderator, "user.unflag", "user", user, before=before)

        self.db.write(work)

    def flagged(self) -> list[dict[str, Any]]:
        with self.db.reading() as session:
            rows = session.exec(select(m.FlaggedUser).order_by(m.FlaggedUser.user_id)).all()  # type: ignore[arg-type]
            return [{"user": r.user_id, "reason": r.reason, "flagged_by": r.flagged_by,
                     "flagged_at": utc(r.flagged_at)} for r in rows]

    def is_flagged(self, user: str) -> bool:
        with self.db.reading() as session:
            return session.get(m.FlaggedUser, user) is not None
