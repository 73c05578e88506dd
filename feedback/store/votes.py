"""Votes: one current 👍/👎 per user per answer, every raw action kept, written atomically.

One vote action is one transaction that (1) serialises against other actions of the same user on
the same answer (an advisory lock on PostgreSQL; SQLite's writers are serialised already),
(2) claims the delivery it came from, when there is one, so a redelivered Slack event or a
replayed button press is recognised, (3) reads the user's vote and last action, and (4) writes.
A failure anywhere rolls all of it back, the claim included, so a retried delivery is processed
instead of being ignored as a duplicate. Toggling (the same button pressed twice withdraws) and
ordering (a reaction older than the user's last action is ignored) are decided inside that
transaction, so two presses at once end in one consistent vote.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    DateTime,
    Integer,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    true,
)

from sqlmodel import col
from sqlmodel import select as orm_select

from feedback import models as m
from feedback.errors import InvalidFeedback, UnknownAnswer
from feedback.records import VoteRecord, VoteResult
from feedback.store.base import (
    AUDIT_TABLE,
    Database,
    answer_id_of,
    audit_row,
    aware,
    insert_audit,
    now,
    user_text,
    utc,
)
from feedback.validation import VotePolicy

VoteMode = Literal["cast", "toggle", "withdraw"]

VOTE = m.Vote.__table__  # type: ignore[attr-defined]
VOTE_EVENT = m.VoteEvent.__table__  # type: ignore[attr-defined]
ANSWER = m.Answer.__table__  # type: ignore[attr-defined]
FLAGGED = m.FlaggedUser.__table__  # type: ignore[attr-defined]
PROCESSED = m.ProcessedEvent.__table__  # type: ignore[attr-defined]
_WRITTEN = ("answer_id", "user_id", "value", "counted", "weight", "why", "source", "reason", "created_at", "updated_at")
_CHANGED = ("value", "counted", "weight", "why", "source", "reason", "updated_at")
_EVENT_COLUMNS = ("answer_id", "user_id", "value", "counted", "weight", "why", "source", "reason")


def lock_key(answer_id: int, user: str) -> int:
    """A signed 64-bit advisory-lock key for one user's vote on one answer."""
    digest = hashlib.sha256(f"askloop.vote:{answer_id}:{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Votes:
    def __init__(self, database: Database, policy: VotePolicy | None = None) -> None:
        self.db = database
        self.policy = policy or VotePolicy()
        self._statements: dict[str, Any] | None = None

    # -- the one write path -------------------------------------------------------------------

    def apply(
        self,
        answer_id: object,
        user: str,
        mode: VoteMode,
        value: int | None = None,
        *,
        source: str = "cli",
        reason: str | None = None,
        at: datetime | None = None,
        delivery: str | None = None,
    ) -> VoteResult:
        """Cast, toggle or withdraw `user`'s vote on an answer (see the module docstring).

        `cast` sets the vote (a repeat replaces it); `toggle` casts unless the user's vote already
        has this value, in which case it is withdrawn (a button pressed twice); `withdraw` removes
        the vote, only when it has `value` if one is given (a removed 👍 reaction must not remove
        a 👎 cast since). `at`: when the person acted (Slack's event time), for ordering.
        `delivery`: a key claimed in the same transaction (a retried delivery returns `duplicate`).
        """
        number = answer_id_of(answer_id)
        if mode not in ("cast", "toggle", "withdraw"):
            raise InvalidFeedback(f"unknown vote action {mode!r}")
        if mode != "withdraw" or value is not None:
            if value not in (1, -1) or isinstance(value, bool):
                raise InvalidFeedback("a vote is +1 (👍) or -1 (👎)")
        if not user:
            raise InvalidFeedback("a vote needs the voter's user id")
        why_text = user_text(reason, "the reason")
        when = utc(at) or now()
        source = (source or "cli")[:40]

        def work(connection: Connection) -> VoteResult:
            sql = self._sql()
            if self.db.is_postgres:
                connection.execute(sql["lock"], {"key": lock_key(number, user)})
            if delivery and connection.execute(sql["claim"], {"event_id": delivery[:200], "at": now()}).first() is None:
                return VoteResult(number, user, "duplicate", 0, 0, why="already processed")
            row = connection.execute(
                sql["state"], {"answer_id": number, "user": user, "since": when - timedelta(hours=1), "when": when}
            ).first()
            if row is None:
                raise UnknownAnswer(number)
            asker, flagged, recent, current, last_at = row[0], bool(row[1]), int(row[2]), int(row[3] or 0), utc(row[6])
            before = None if row[3] is None else {"value": row[3], "counted": row[4], "weight": row[5]}
            if at is not None and last_at is not None and when < last_at:
                self._event(connection, number, user, value or 0, "stale", source, why_text, when,
                            why="older than this user's last vote action")
                return VoteResult(number, user, "stale", current, current, why="an older action arrived late")
            if mode == "withdraw" or (mode == "toggle" and current == value):
                if current == 0 or (value is not None and current != value):
                    return VoteResult(number, user, "none", current, current, why="no such vote to withdraw")
                connection.execute(delete(VOTE).where(VOTE.c.answer_id == number, VOTE.c.user_id == user))
                self._event(connection, number, user, 0, "remove", source, why_text, when, why="removed")
                insert_audit(connection, audit_row(user, "vote.remove", "answer", number, before=before))
                return VoteResult(number, user, "remove", 0, current, why="removed")
            assert value is not None
            decision = self.policy.decide(voter=user, asker=asker, flagged=flagged, counted_last_hour=recent)
            action = "replace" if current else "cast"
            fields = dict(answer_id=number, user_id=user, value=value, counted=decision.counted,
                          weight=decision.weight, why=decision.why, source=source, reason=why_text)
            audit = audit_row(user, f"vote.{action}", "answer", number, before=before,
                              after={"value": value, "counted": decision.counted, "weight": decision.weight,
                                     "why": decision.why})
            if self.db.is_postgres:  # upsert, VoteEvent and AuditEvent in one statement
                params = fields | {"created_at": when, "updated_at": when, "action": action, "at": when}
                params |= {f"audit_{k}": v for k, v in audit.items()}
                connection.execute(sql["combined"], params)
            else:
                connection.execute(sql["upsert"], fields | {"created_at": when, "updated_at": when})
                connection.execute(insert(VOTE_EVENT), fields | {"action": action, "at": when})
                insert_audit(connection, audit)
            return VoteResult(number, user, action, value, current, decision.counted, decision.weight, decision.why)

        return self.db.write_core(work)

    def cast(self, answer_id: object, user: str, value: int, **kwargs: Any) -> VoteResult:
        return self.apply(answer_id, user, "cast", value, **kwargs)

    def withdraw(self, answer_id: object, user: str, value: int | None = None, **kwargs: Any) -> VoteResult:
        return self.apply(answer_id, user, "withdraw", value, **kwargs)

    def _event(self, connection: Connection, answer_id: int, user: str, value: int, action: str, source: str,
               reason: str | None, when: datetime, *, why: str) -> None:
        connection.execute(insert(VOTE_EVENT), dict(answer_id=answer_id, user_id=user, value=value, action=action,
                                                    counted=False, weight=0.0, why=why, source=source,
                                                    reason=reason, at=when))

    def _sql(self) -> dict[str, Any]:
        """The statements of a vote action, built once per store."""
        if self._statements is not None:
            return self._statements
        user = bindparam("user", type_=String())
        is_flagged = select(func.count()).select_from(FLAGGED).where(FLAGGED.c.user_id == user)
        recent = select(func.count()).select_from(VOTE_EVENT).where(
            VOTE_EVENT.c.user_id == user,
            VOTE_EVENT.c.counted == true(),
            VOTE_EVENT.c.at > bindparam("since", type_=DateTime(timezone=True)),
            VOTE_EVENT.c.at <= bindparam("when", type_=DateTime(timezone=True)),
        )
        last_at = select(func.max(VOTE_EVENT.c.at)).where(
            VOTE_EVENT.c.answer_id == ANSWER.c.id, VOTE_EVENT.c.user_id == user
        )
        state = (
            select(ANSWER.c.asker, is_flagged.scalar_subquery(), recent.scalar_subquery(),
                   VOTE.c.value, VOTE.c.counted, VOTE.c.weight, last_at.scalar_subquery())
            .select_from(ANSWER.outerjoin(VOTE, and_(VOTE.c.answer_id == ANSWER.c.id, VOTE.c.user_id == user)))
            .where(ANSWER.c.id == bindparam("answer_id", type_=Integer()))
        )
        claim = (
            self.db.upsert(PROCESSED)
            .values(event_id=bindparam("event_id", type_=String()), at=bindparam("at", type_=DateTime(timezone=True)))
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(PROCESSED.c.event_id)
        )
        values = self.db.upsert(VOTE).values({c: bindparam(c, type_=VOTE.c[c].type) for c in _WRITTEN})
        upsert = values.on_conflict_do_update(
            index_elements=["answer_id", "user_id"], set_={c: values.excluded[c] for c in _CHANGED}
        ).returning(VOTE.c.id)
        statements: dict[str, Any] = {"state": state, "claim": claim, "upsert": upsert,
                                      "lock": text("SELECT pg_advisory_xact_lock(:key)")}
        if self.db.is_postgres:
            written = upsert.cte("written")
            event = insert(VOTE_EVENT).values(
                {c: bindparam(c, type_=VOTE_EVENT.c[c].type) for c in _EVENT_COLUMNS}
                | {"action": bindparam("action", type_=String()), "at": bindparam("at", type_=VOTE_EVENT.c.at.type)}
            ).cte("event")
            audit = insert(AUDIT_TABLE).values(
                {c.name: bindparam(f"audit_{c.name}", type_=c.type) for c in AUDIT_TABLE.columns if c.name != "id"}
            ).cte("audit")
            statements["combined"] = select(written.c.id).add_cte(event, audit)
        self._statements = statements
        return statements

    # -- reading ------------------------------------------------------------------------------

    def for_answer(self, answer_id: object) -> list[VoteRecord]:
        number = answer_id_of(answer_id)
        with self.db.reading() as session:
            rows = session.exec(orm_select(m.Vote).where(m.Vote.answer_id == number).order_by(col(m.Vote.id))).all()
            return [vote_record(v) for v in rows]

    def current(self, answer_id: object, user: str) -> int:
        """The user's vote in force on an answer: +1, -1, or 0 for none."""
        return next((v.value for v in self.for_answer(answer_id) if v.user == user), 0)

    def history(self, answer_id: int | None = None, user: str | None = None) -> list[dict[str, Any]]:
        """Every raw vote action (cast, replace, remove, stale), oldest first."""
        with self.db.reading() as session:
            query = orm_select(m.VoteEvent).order_by(col(m.VoteEvent.id))
            if answer_id is not None:
                query = query.where(m.VoteEvent.answer_id == answer_id)
            if user is not None:
                query = query.where(m.VoteEvent.user_id == user)
            return [
                {
                    "answer_id": e.answer_id, "user": e.user_id, "value": e.value, "action": e.action,
                    "counted": e.counted, "weight": e.weight, "why": e.why, "source": e.source,
                    "reason": e.reason, "at": utc(e.at),
                }
                for e in session.exec(query).all()
            ]


def vote_record(v: m.Vote) -> VoteRecord:
    assert v.id is not None
    return VoteRecord(
        v.id, v.answer_id, v.user_id, v.value, v.counted, v.weight, v.why, v.source, v.reason,
        aware(v.created_at), aware(v.updated_at),
    )
