"""FeedbackStore: the one place that reads and writes the feedback database.

Thread-safe (one engine, a short session per call) and transactional: each public method that
changes something is one transaction that also writes its AuditEvent, so a crash leaves either
the old state or the new one, never a mix. Conflicting writers are resolved by the database —
unique constraints with upserts for votes and event ids, a row lock on the active-version pointer
for applies and rollbacks — and transient lock errors are retried.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import urlparse

import numpy as np
from sqlalchemy import Connection, DateTime, Engine, Integer, String, and_, bindparam, case, delete, func, insert, or_, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, select

from feedback import db
from feedback import models as m
from feedback.errors import (
    InvalidFeedback,
    InvalidState,
    NotFound,
    PermissionDenied,
    UnknownAnswer,
)
from feedback.records import (
    AnswerRecord,
    AuditRecord,
    CorrectionRecord,
    GoldenQuestion,
    ProposalRecord,
    ReviewItem,
    ReviewPage,
    ShownDoc,
    StoreStats,
    TrainingCorrection,
    TrainingFeedback,
    TrainingVote,
    VersionRecord,
    VoteOutcome,
    VoteRecord,
    WindowStats,
)
from feedback.validation import VotePolicy

T = TypeVar("T")

MAX_TEXT = 4000
MAX_QUESTION = 20000
OPEN_PROPOSAL_STATES = ("pending", "evaluated", "failing", "approved")
STATS_WINDOWS: tuple[tuple[str, timedelta | None], ...] = (
    ("24h", timedelta(hours=24)),
    ("7d", timedelta(days=7)),
    ("30d", timedelta(days=30)),
    ("all", None),
)
_RETRIES = 8
_VOTE = m.Vote.__table__  # type: ignore[attr-defined]
_VOTE_EVENT = m.VoteEvent.__table__  # type: ignore[attr-defined]
_AUDIT = m.AuditEvent.__table__  # type: ignore[attr-defined]


def utc(value: datetime | None) -> datetime | None:
    """Aware UTC datetimes in and out (SQLite hands back naive ones)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _transient(exc: OperationalError) -> bool:
    text = str(exc.orig if exc.orig is not None else exc).lower()
    code = getattr(exc.orig, "sqlstate", None)
    return code in {"40001", "40P01"} or "locked" in text or "busy" in text or "deadlock" in text


def _doc_ref(source_ref: str | None) -> tuple[str | None, str | None]:
    """(doc_id, url) from what a user typed: `doc:ID`, a bare id, or an http(s) URL."""
    if not source_ref:
        return None, None
    if "://" in source_ref:
        return None, source_ref
    return (source_ref[4:] if source_ref.startswith("doc:") else source_ref), None


def _answer_id(value: object) -> int:
    """An answer id as an int ("12" from a button value is fine); anything else is unknown."""
    if isinstance(value, bool):
        raise UnknownAnswer(value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise UnknownAnswer(value)
    if not 0 < number < 2**63:
        raise UnknownAnswer(value)
    return number


VECTOR_DTYPE = np.dtype("<f2")  # float16: half the bytes of float32, the precision payloads keep
MAX_VECTOR_DIM = 8192


def pack_vector(vector: Any, model: str | None) -> tuple[bytes | None, str | None]:
    """A question vector as stored on its answer: compact bytes plus the model that made it.

    A vector without a model name could never be trusted by the learning engine, so it is refused
    rather than stored; no vector at all is fine (the engine embeds such questions itself)."""
    if vector is None:
        return None, None
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or not 0 < array.size <= MAX_VECTOR_DIM or not np.isfinite(array).all():
        raise InvalidFeedback(f"a question vector must be one finite row of at most {MAX_VECTOR_DIM} numbers")
    if not (model or "").strip():
        raise InvalidFeedback("a question vector needs the name of the model that computed it")
    return array.astype(VECTOR_DTYPE).tobytes(), model.strip()[:200]  # type: ignore[union-attr]


def unpack_vector(blob: bytes | None) -> np.ndarray | None:
    """The stored bytes back as a float32 vector (None stays None)."""
    if not blob:
        return None
    return np.frombuffer(blob, dtype=VECTOR_DTYPE).astype(np.float32)


def _check_json(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidFeedback(f"{what} must be a JSON object")
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise InvalidFeedback(f"{what} is not valid JSON: {exc}") from None


class FeedbackStore:
    def __init__(
        self,
        url: str,
        *,
        policy: VotePolicy | None = None,
        moderators: Iterable[str] = (),
        is_moderator: Callable[[str], bool] | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.url = url
        self.engine = engine or db.make_engine(url)
        self.policy = policy or VotePolicy()
        self.moderators = frozenset(m_.strip() for m_ in moderators if m_.strip())
        self._is_moderator = is_moderator
        self._upsert = sqlite_insert if self.engine.dialect.name == "sqlite" else pg_insert
        self._vote_sql: tuple[Any, Any, Any] | None = None
        self._reader = self.engine.execution_options(read_only=True)

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> "FeedbackStore":
        policy = VotePolicy(
            max_votes_per_hour=settings.vote_limit_per_hour,
            asker_weight=settings.asker_vote_weight,
            other_weight=settings.other_vote_weight,
        )
        if str(settings.effective_database_url).startswith("sqlite"):
            settings.home.mkdir(parents=True, exist_ok=True)
        return cls(
            settings.effective_database_url, policy=policy, moderators=settings.moderators, **kwargs
        )

    def close(self) -> None:
        self.engine.dispose()

    # -- schema -------------------------------------------------------------------------------

    def upgrade(self) -> tuple[str | None, str]:
        """Bring the schema to the newest revision (`askloop db upgrade`)."""
        return db.upgrade(self.engine)

    def check_schema(self) -> str:
        """The revision, or OutdatedSchema telling the operator to run `askloop db upgrade`."""
        return db.check_schema(self.engine)

    def is_empty(self) -> bool:
        return db.is_empty(self.engine)

    # -- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """A session for reading only (on SQLite it takes no write lock)."""
        with Session(self._reader, expire_on_commit=False) as session:
            yield session

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Run one transaction attempt, again (with a short backoff) when the database reports a
        transient lock or serialization failure; anything else, or the last failure, is raised."""
        for number in range(_RETRIES):
            try:
                return attempt()
            except OperationalError as exc:
                if not _transient(exc) or number == _RETRIES - 1:
                    raise
                time.sleep(0.01 * 2**number)
        raise AssertionError("unreachable")

    def _write(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one transaction, retrying when the database reports a transient lock."""

        def attempt() -> T:
            with Session(self.engine, expire_on_commit=False) as session:
                with session.begin():
                    return work(session)

        return self._retrying(attempt)

    def _write_core(self, work: Callable[[Connection], T], *, single_statement: bool = False) -> T:
        """Like `_write` on a plain Core connection: for the hot path (votes), no ORM overhead.

        `single_statement`: on PostgreSQL, `work` reads and then makes its whole change in ONE
        statement (atomic by itself), so no BEGIN/COMMIT round trips are spent around it. Under
        PostgreSQL's default READ COMMITTED isolation the reads see the same data either way.
        """
        autocommit = single_statement and self.engine.dialect.name == "postgresql"

        def attempt() -> T:
            if autocommit:
                with self.engine.connect() as connection:
                    return work(connection.execution_options(isolation_level="AUTOCOMMIT"))
            with self.engine.begin() as connection:
                return work(connection)

        return self._retrying(attempt)

    def _audit(
        self,
        session: Session,
        actor: str,
        action: str,
        object_type: str,
        object_id: object,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> None:
        session.add(
            m.AuditEvent(
                actor=actor,
                action=action,
                object_type=object_type,
                object_id=str(object_id),
                before=before,
                after=after,
                note=note,
            )
        )

    # -- moderators ---------------------------------------------------------------------------

    def is_moderator(self, user: str) -> bool:
        if not user:
            return False
        if user in self.moderators:
            return True
        return bool(self._is_moderator and self._is_moderator(user))

    def require_moderator(self, user: str) -> None:
        if not self.is_moderator(user):
            raise PermissionDenied(
                f"{user or 'this user'} is not a moderator: only moderators "
                f"(ASKLOOP_MODERATORS) may approve, reject, edit, flag or roll back"
            )

    # -- answers ------------------------------------------------------------------------------

    def record_answer(
        self,
        *,
        question: str,
        asker: str,
        origin: str,
        hits: list[Any],
        answer_text: str,
        abstained: bool,
        tuning_version: int | None,
        channel: str | None = None,
        thread_ts: str | None = None,
        question_vector: np.ndarray | None = None,
        vector_model: str | None = None,
    ) -> AnswerRecord:
        """Record one answer and the documents it showed.

        `question_vector` is the raw embedder vector the answer was retrieved with (before any
        learned query adapter) and `vector_model` the embedder's `model_id`: kept so that learning
        from this answer's feedback need not embed the question again.
        """
        if not (question or "").strip():
            raise InvalidFeedback("cannot record an answer to an empty question")
        if not asker:
            raise InvalidFeedback("an answer needs the asker's user id")
        packed, model = pack_vector(question_vector, vector_model)

        def work(session: Session) -> AnswerRecord:
            row = m.Answer(
                question=question.strip()[:MAX_QUESTION],
                asker=asker,
                origin=origin or "unknown",
                channel=channel,
                thread_ts=thread_ts,
                tuning_version=tuning_version,
                abstained=abstained,
                answer_text=answer_text or "",
                question_vector=packed,
                vector_model=model,
            )
            session.add(row)
            session.flush()
            shown = [
                m.ShownSource(
                    answer_id=row.id,
                    rank=rank,
                    doc_id=hit.doc_id,
                    chunk_id=getattr(hit, "chunk_id", "") or "",
                    title=getattr(hit, "title", "") or "",
                    source=getattr(hit, "source", "") or "",
                    score=float(hit.score),
                    base_score=float(getattr(hit, "base_score", 0.0) or 0.0),
                )
                for rank, hit in enumerate(hits, 1)
            ]
            session.add_all(shown)
            session.flush()
            return self._answer_record(row, shown)

        return self._write(work)

    def _answer_record(self, row: m.Answer, shown: list[m.ShownSource]) -> AnswerRecord:
        assert row.id is not None
        return AnswerRecord(
            id=row.id,
            question=row.question,
            asker=row.asker,
            origin=row.origin,
            created_at=utc(row.created_at),  # type: ignore[arg-type]
            tuning_version=row.tuning_version,
            abstained=row.abstained,
            answer_text=row.answer_text,
            shown=[self._shown(s) for s in sorted(shown, key=lambda s: s.rank)],
            channel=row.channel,
            thread_ts=row.thread_ts,
            message_ts=row.message_ts,
        )

    @staticmethod
    def _shown(s: m.ShownSource) -> ShownDoc:
        return ShownDoc(s.rank, s.doc_id, s.chunk_id, s.title, s.source, s.score, s.base_score)

    def _shown_for(self, session: Session, answer_ids: Iterable[int]) -> dict[int, list[ShownDoc]]:
        ids = sorted(set(answer_ids))
        result: dict[int, list[ShownDoc]] = {i: [] for i in ids}
        for start in range(0, len(ids), 500):
            rows = session.exec(
                select(m.ShownSource)
                .where(m.ShownSource.answer_id.in_(ids[start : start + 500]))  # type: ignore[attr-defined]
                .order_by(m.ShownSource.answer_id, m.ShownSource.rank)
            ).all()
            for s in rows:
                result[s.answer_id].append(self._shown(s))
        return result

    def get_answer(self, answer_id: int) -> AnswerRecord:
        answer_id = _answer_id(answer_id)
        with self._session() as session:
            row = session.get(m.Answer, answer_id)
            if row is None:
                raise UnknownAnswer(answer_id)
            shown = session.exec(select(m.ShownSource).where(m.ShownSource.answer_id == answer_id)).all()
            return self._answer_record(row, list(shown))

    def attach_message(self, answer_id: int, channel: str, message_ts: str) -> None:
        """Remember which Slack message carries this answer, so reactions find it."""
        answer_id = _answer_id(answer_id)

        def work(session: Session) -> None:
            row = session.get(m.Answer, answer_id)
            if row is None:
                raise UnknownAnswer(answer_id)
            row.channel, row.message_ts = channel, message_ts
            session.add(row)
            session.flush()

        try:
            self._write(work)
        except IntegrityError:
            raise InvalidFeedback(
                f"message {message_ts} in {channel} already belongs to another answer"
            ) from None

    def answer_for_message(self, channel: str, message_ts: str) -> AnswerRecord | None:
        with self._session() as session:
            row = session.exec(
                select(m.Answer).where(m.Answer.channel == channel, m.Answer.message_ts == message_ts)
            ).first()
            if row is None:
                return None
            shown = session.exec(select(m.ShownSource).where(m.ShownSource.answer_id == row.id)).all()
            return self._answer_record(row, list(shown))

    def answered_in_thread(self, channel: str, thread_ts: str) -> bool:
        """Whether an answer of ours was posted in this Slack thread.

        Every replica writes its answers here, so a follow-up that reaches a replica which did
        not answer the thread is recognised without asking Slack (`conversations.replies` is
        rate-limited). `thread_ts` is the thread's root: the question's ts for a top-level
        mention, DM or `/askloop`, the parent's ts for a question asked inside a thread. Only
        answers that reached Slack count (their message is attached), not ones whose post failed.
        """
        if not channel or not thread_ts:
            return False
        with self._session() as session:
            found = session.exec(
                select(m.Answer.id)
                .where(
                    m.Answer.channel == channel,
                    m.Answer.thread_ts == thread_ts,
                    m.Answer.message_ts.is_not(None),  # type: ignore[union-attr]
                )
                .limit(1)
            ).first()
            return found is not None

    def answers(self, *, limit: int = 50, offset: int = 0) -> list[AnswerRecord]:
        """Most recent first."""
        with self._session() as session:
            rows = session.exec(
                select(m.Answer).order_by(m.Answer.id.desc()).offset(offset).limit(limit)  # type: ignore[union-attr]
            ).all()
            shown = self._shown_for(session, [r.id for r in rows])  # type: ignore[misc]
            return [self._answer_record_from(r, shown[r.id]) for r in rows]  # type: ignore[index]

    def _answer_record_from(self, row: m.Answer, shown: list[ShownDoc]) -> AnswerRecord:
        record = self._answer_record(row, [])
        return AnswerRecord(**{**record.__dict__, "shown": shown})

    # -- votes --------------------------------------------------------------------------------

    def vote(
        self,
        answer_id: int,
        user: str,
        value: int,
        *,
        source: str = "cli",
        reason: str | None = None,
        at: datetime | None = None,
    ) -> VoteOutcome:
        """Store `user`'s 👍 (+1) or 👎 (-1), replacing their earlier vote on this answer.

        The raw vote is always kept (VoteEvent); the policy decides whether it counts for
        learning and with what weight, and the outcome says why.
        """
        answer_id = _answer_id(answer_id)
        if value not in (1, -1) or isinstance(value, bool):
            raise InvalidFeedback("a vote is +1 (👍) or -1 (👎)")
        if not user:
            raise InvalidFeedback("a vote needs the voter's user id")
        if reason is not None and len(reason) > MAX_TEXT:
            raise InvalidFeedback(f"the reason is too long (the limit is {MAX_TEXT:,} characters)")
        when = utc(at) or _now()

        def work(connection: Connection) -> VoteOutcome:
            check, upsert, combined = self._vote_statements()
            row = connection.execute(
                check, {"answer_id": answer_id, "user": user, "since": when - timedelta(hours=1), "when": when}
            ).first()
            if row is None:
                raise UnknownAnswer(answer_id)
            asker, flagged, recent = row[0], bool(row[1]), int(row[2])
            before = None if row[3] is None else (row[3], row[4], row[5])
            decision = self.policy.decide(voter=user, asker=asker, flagged=flagged, counted_last_hour=recent)
            fields = dict(
                answer_id=answer_id, user_id=user, value=value, counted=decision.counted, weight=decision.weight,
                why=decision.why, source=source, reason=reason,
            )
            action = "replace" if before is not None else "cast"
            audit = {
                "at": _now(), "actor": user, "action": f"vote.{action}", "object_type": "answer",
                "object_id": str(answer_id), "note": None,
                "before": None if before is None else {"value": before[0], "counted": before[1], "weight": before[2]},
                "after": {"value": value, "counted": decision.counted, "weight": decision.weight, "why": decision.why},
            }
            if combined is not None:  # PostgreSQL: the three writes in one statement
                params = fields | {"created_at": when, "updated_at": when, "action": action, "at": when}
                params |= {f"audit_{k}": v for k, v in audit.items()}
                vote_id = connection.execute(combined, params).scalar_one()
            else:
                vote_id = connection.execute(upsert, fields | {"created_at": when, "updated_at": when}).scalar_one()
                connection.execute(insert(_VOTE_EVENT), fields | {"action": action, "at": when})
                connection.execute(insert(_AUDIT), audit)
            return VoteOutcome(
                vote_id=vote_id,
                answer_id=answer_id,
                user=user,
                value=value,
                counted=decision.counted,
                weight=decision.weight,
                why=decision.why,
                replaced=before is not None,
            )

        return self._write_core(work, single_statement=True)

    def _vote_statements(self) -> tuple[Any, Any, Any]:
        """The vote's statements, built once: the decision inputs in one query, the upsert, and on
        PostgreSQL the upsert, VoteEvent and AuditEvent inserts as one statement (one round trip)."""
        if self._vote_sql is None:
            vote, events, flagged = _VOTE, _VOTE_EVENT, m.FlaggedUser.__table__  # type: ignore[attr-defined]
            answers = m.Answer.__table__  # type: ignore[attr-defined]
            user = bindparam("user", type_=String())
            is_flagged = select(func.count()).select_from(flagged).where(flagged.c.user_id == user)
            recent = select(func.count()).select_from(events).where(
                events.c.user_id == user,
                events.c.counted == true(),
                events.c.at > bindparam("since", type_=DateTime(timezone=True)),
                events.c.at <= bindparam("when", type_=DateTime(timezone=True)),
            )
            check = (
                select(answers.c.asker, is_flagged.scalar_subquery(), recent.scalar_subquery(),
                       vote.c.value, vote.c.counted, vote.c.weight)
                .select_from(answers.outerjoin(vote, and_(vote.c.answer_id == answers.c.id, vote.c.user_id == user)))
                .where(answers.c.id == bindparam("answer_id", type_=Integer()))
            )
            written_columns = ("answer_id", "user_id", "value", "counted", "weight", "why", "source", "reason",
                               "created_at", "updated_at")
            upsert = self._upsert(vote).values({c: bindparam(c, type_=vote.c[c].type) for c in written_columns})
            changed = ("value", "counted", "weight", "why", "source", "reason", "updated_at")
            upsert = upsert.on_conflict_do_update(
                index_elements=["answer_id", "user_id"], set_={c: upsert.excluded[c] for c in changed}
            ).returning(vote.c.id)
            combined = None
            if self.engine.dialect.name == "postgresql":
                columns = ("answer_id", "user_id", "value", "counted", "weight", "why", "source", "reason")
                written = upsert.cte("written")
                event = insert(events).values(
                    {c: bindparam(c, type_=events.c[c].type) for c in columns}
                    | {"action": bindparam("action", type_=String()), "at": bindparam("at", type_=events.c.at.type)}
                ).cte("event")
                audit_table = _AUDIT
                audit = insert(audit_table).values(
                    {c.name: bindparam(f"audit_{c.name}", type_=c.type) for c in audit_table.columns if c.name != "id"}
                ).cte("audit")
                combined = select(written.c.id).add_cte(event, audit)
            self._vote_sql = (check, upsert, combined)
        return self._vote_sql

    def remove_vote(self, answer_id: int, user: str, *, source: str = "cli") -> bool:
        """Withdraw `user`'s vote (a removed reaction); False when there was none."""
        answer_id = _answer_id(answer_id)

        def work(session: Session) -> bool:
            if session.get(m.Answer, answer_id) is None:
                raise UnknownAnswer(answer_id)
            removed = session.execute(
                delete(m.Vote)
                .where(m.Vote.answer_id == answer_id, m.Vote.user_id == user)  # type: ignore[arg-type]
                .returning(m.Vote.value)
            ).first()
            if removed is None:
                return False
            session.add(
                m.VoteEvent(answer_id=answer_id, user_id=user, value=0, action="remove", source=source, why="removed")
            )
            self._audit(session, user, "vote.remove", "answer", answer_id, before={"value": removed[0]})
            return True

        return self._write(work)

    def votes_for(self, answer_id: int) -> list[VoteRecord]:
        with self._session() as session:
            rows = session.exec(select(m.Vote).where(m.Vote.answer_id == answer_id).order_by(m.Vote.id)).all()
            return [self._vote_record(v) for v in rows]

    @staticmethod
    def _vote_record(v: m.Vote) -> VoteRecord:
        return VoteRecord(
            v.id, v.answer_id, v.user_id, v.value, v.counted, v.weight, v.why, v.source, v.reason,
            utc(v.created_at), utc(v.updated_at),  # type: ignore[arg-type]
        )

    def vote_history(self, answer_id: int | None = None, user: str | None = None) -> list[dict[str, Any]]:
        """Every raw vote action (cast, replace, remove), oldest first."""
        with self._session() as session:
            query = select(m.VoteEvent).order_by(m.VoteEvent.id)
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

    # -- corrections --------------------------------------------------------------------------

    @staticmethod
    def _check_correction(text: str | None, source_ref: str | None) -> tuple[str | None, str | None]:
        text = (text or "").strip() or None
        source_ref = (source_ref or "").strip() or None
        if text is None and source_ref is None:
            raise InvalidFeedback("a correction needs better answer text, a source (doc:ID or URL), or both")
        if text is not None and len(text) > MAX_TEXT:
            raise InvalidFeedback(f"the correction is too long (the limit is {MAX_TEXT:,} characters)")
        if source_ref is not None:
            if len(source_ref) > 1000 or any(c.isspace() for c in source_ref):
                raise InvalidFeedback("a source is a document id (doc:ID) or a URL, without spaces")
            if "://" in source_ref:
                parsed = urlparse(source_ref)
                if parsed.scheme not in {"http", "https"} or not parsed.netloc:
                    raise InvalidFeedback("a source URL must start with http:// or https://")
            elif source_ref.startswith("doc:") and len(source_ref) == 4:
                raise InvalidFeedback("doc: needs a document id after it")
        return text, source_ref

    def suggest_correction(
        self, answer_id: int, user: str, *, text: str | None = None, source_ref: str | None = None
    ) -> CorrectionRecord:
        answer_id = _answer_id(answer_id)
        text, source_ref = self._check_correction(text, source_ref)
        if not user:
            raise InvalidFeedback("a correction needs the user's id")

        def work(session: Session) -> CorrectionRecord:
            answer = session.get(m.Answer, answer_id)
            if answer is None:
                raise UnknownAnswer(answer_id)
            row = m.Correction(answer_id=answer_id, user_id=user, text=text, source_ref=source_ref)
            session.add(row)
            session.flush()
            self._audit(session, user, "correction.suggest", "correction", row.id, after=self._correction_state(row))
            return self._correction_record(row, answer.question)

        return self._write(work)

    @staticmethod
    def _correction_state(row: m.Correction) -> dict[str, Any]:
        return {"status": row.status, "text": row.text, "source_ref": row.source_ref}

    @staticmethod
    def _correction_record(row: m.Correction, question: str = "") -> CorrectionRecord:
        assert row.id is not None
        return CorrectionRecord(
            id=row.id,
            answer_id=row.answer_id,
            user=row.user_id,
            text=row.text,
            source_ref=row.source_ref,
            status=row.status,
            created_at=utc(row.created_at),  # type: ignore[arg-type]
            decided_by=row.decided_by,
            decided_at=utc(row.decided_at),
            note=row.note,
            original_text=row.original_text,
            original_source_ref=row.original_source_ref,
            question=question,
        )

    def _locked_correction(self, session: Session, correction_id: int) -> m.Correction:
        row = session.exec(
            select(m.Correction).where(m.Correction.id == correction_id).with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"there is no correction c{correction_id}")
        if row.status != "pending":
            raise InvalidState(f"correction c{correction_id} is already {row.status}")
        return row

    def get_correction(self, correction_id: int) -> CorrectionRecord:
        with self._session() as session:
            row = session.get(m.Correction, correction_id)
            if row is None:
                raise NotFound(f"there is no correction c{correction_id}")
            answer = session.get(m.Answer, row.answer_id)
            return self._correction_record(row, answer.question if answer else "")

    def corrections(self, *, status: str | None = None, answer_id: int | None = None) -> list[CorrectionRecord]:
        with self._session() as session:
            query = select(m.Correction, m.Answer.question).join(m.Answer).order_by(m.Correction.id)
            if status:
                query = query.where(m.Correction.status == status)
            if answer_id is not None:
                query = query.where(m.Correction.answer_id == answer_id)
            return [self._correction_record(c, q) for c, q in session.exec(query).all()]

    def approve_correction(
        self,
        correction_id: int,
        moderator: str,
        *,
        note: str | None = None,
        text: str | None = None,
        source_ref: str | None = None,
    ) -> CorrectionRecord:
        """Approve (or edit, then approve). A cited document also becomes a golden question.

        Approval only makes the correction available to the next Proposal; nothing changes in
        answers until that proposal passes the gate and is applied.
        """
        self.require_moderator(moderator)
        edited = text is not None or source_ref is not None

        def work(session: Session) -> CorrectionRecord:
            row = self._locked_correction(session, correction_id)
            before = self._correction_state(row)
            if edited:
                new_text, new_ref = self._check_correction(
                    text if text is not None else row.text,
                    source_ref if source_ref is not None else row.source_ref,
                )
                row.original_text, row.original_source_ref = row.text, row.source_ref
                row.text, row.source_ref = new_text, new_ref
            row.status, row.decided_by, row.decided_at, row.note = "approved", moderator, _now(), note
            session.add(row)
            session.flush()
            answer = session.get(m.Answer, row.answer_id)
            assert answer is not None
            self._audit(
                session, moderator, "correction.edit_approve" if edited else "correction.approve",
                "correction", row.id, before=before, after=self._correction_state(row), note=note,
            )
            doc_id, _url = _doc_ref(row.source_ref)
            if doc_id:
                golden = m.GoldenQuestion(
                    question=answer.question, doc_ids=[doc_id], added_by=moderator,
                    origin="correction", correction_id=row.id,
                )
                session.add(golden)
                session.flush()
                self._audit(
                    session, moderator, "golden.add", "golden_question", golden.id,
                    after={"question": answer.question, "doc_ids": [doc_id], "correction_id": row.id},
                )
            return self._correction_record(row, answer.question)

        return self._write(work)

    def reject_correction(self, correction_id: int, moderator: str, *, note: str | None = None) -> CorrectionRecord:
        self.require_moderator(moderator)

        def work(session: Session) -> CorrectionRecord:
            row = self._locked_correction(session, correction_id)
            before = self._correction_state(row)
            row.status, row.decided_by, row.decided_at, row.note = "rejected", moderator, _now(), note
            session.add(row)
            session.flush()
            self._audit(session, moderator, "correction.reject", "correction", row.id,
                        before=before, after=self._correction_state(row), note=note)
            answer = session.get(m.Answer, row.answer_id)
            return self._correction_record(row, answer.question if answer else "")

        return self._write(work)

    # -- users --------------------------------------------------------------------------------

    def flag_user(self, user: str, moderator: str, reason: str = "") -> None:
        """From now on `user`'s votes count zero (they are still stored)."""
        self.require_moderator(moderator)
        if not user:
            raise InvalidFeedback("which user? give a user id")

        def work(session: Session) -> None:
            row = session.get(m.FlaggedUser, user)
            before = None if row is None else {"reason": row.reason, "flagged_by": row.flagged_by}
            if row is None:
                row = m.FlaggedUser(user_id=user, reason=reason or "", flagged_by=moderator)
            else:
                row.reason, row.flagged_by, row.flagged_at = reason or row.reason, moderator, _now()
            session.add(row)
            self._audit(session, moderator, "user.flag", "user", user, before=before,
                        after={"reason": row.reason, "flagged_by": moderator})

        self._write(work)

    def unflag_user(self, user: str, moderator: str) -> None:
        self.require_moderator(moderator)

        def work(session: Session) -> None:
            row = session.get(m.FlaggedUser, user)
            if row is None:
                raise NotFound(f"{user} is not flagged")
            before = {"reason": row.reason, "flagged_by": row.flagged_by}
            session.delete(row)
            self._audit(session, moderator, "user.unflag", "user", user, before=before)

        self._write(work)

    def flagged_users(self) -> list[dict[str, Any]]:
        with self._session() as session:
            rows = session.exec(select(m.FlaggedUser).order_by(m.FlaggedUser.user_id)).all()
            return [
                {"user": r.user_id, "reason": r.reason, "flagged_by": r.flagged_by, "flagged_at": utc(r.flagged_at)}
                for r in rows
            ]

    def is_flagged(self, user: str) -> bool:
        with self._session() as session:
            return session.get(m.FlaggedUser, user) is not None

    # -- learning input -----------------------------------------------------------------------

    def training_feedback(self, *, since: datetime | None = None) -> TrainingFeedback:
        """Counted votes (of users not flagged now) and approved corrections: what may teach."""
        since = utc(since)
        with self._session() as session:
            flagged = select(m.FlaggedUser.user_id)
            vq = (
                select(m.Vote, m.Answer)
                .join(m.Answer, m.Answer.id == m.Vote.answer_id)
                .where(m.Vote.counted == True, m.Vote.user_id.not_in(flagged))  # type: ignore[attr-defined]  # noqa: E712
                .order_by(m.Vote.id)
            )
            if since is not None:
                vq = vq.where(m.Vote.updated_at >= since)
            votes = session.exec(vq).all()
            cq = (
                select(m.Correction, m.Answer)
                .join(m.Answer, m.Answer.id == m.Correction.answer_id)
                .where(m.Correction.status == "approved")
                .order_by(m.Correction.id)
            )
            if since is not None:
                cq = cq.where(m.Correction.decided_at >= since)
            corrections = session.exec(cq).all()
            shown = self._shown_for(session, [a.id for _, a in votes] + [a.id for _, a in corrections])  # type: ignore[misc]
            return TrainingFeedback(
                votes=[
                    TrainingVote(
                        answer_id=a.id, question=a.question, asker=a.asker, user=v.user_id,  # type: ignore[arg-type]
                        value=v.value, weight=v.weight, shown=shown[a.id],  # type: ignore[index]
                        at=utc(v.updated_at), tuning_version=a.tuning_version,  # type: ignore[arg-type]
                        question_vector=unpack_vector(a.question_vector), vector_model=a.vector_model,
                    )
                    for v, a in votes
                ],
                corrections=[
                    TrainingCorrection(
                        correction_id=c.id, answer_id=a.id, question=a.question, user=c.user_id,  # type: ignore[arg-type]
                        doc_id=_doc_ref(c.source_ref)[0], url=_doc_ref(c.source_ref)[1], text=c.text,
                        at=utc(c.decided_at), shown=shown[a.id],  # type: ignore[arg-type,index]
                        question_vector=unpack_vector(a.question_vector), vector_model=a.vector_model,
                    )
                    for c, a in corrections
                ],
            )

    # -- golden set ---------------------------------------------------------------------------

    def add_golden(
        self,
        question: str,
        doc_ids: list[str],
        added_by: str,
        *,
        origin: str = "manual",
        correction_id: int | None = None,
    ) -> GoldenQuestion:
        question = (question or "").strip()
        doc_ids = [d.strip() for d in doc_ids if d and d.strip()]
        if not question or not doc_ids:
            raise InvalidFeedback("a golden question needs the question and at least one document id")

        def work(session: Session) -> GoldenQuestion:
            row = m.GoldenQuestion(question=question, doc_ids=doc_ids, added_by=added_by,
                                   origin=origin, correction_id=correction_id)
            session.add(row)
            session.flush()
            self._audit(session, added_by, "golden.add", "golden_question", row.id,
                        after={"question": question, "doc_ids": doc_ids})
            return self._golden(row)

        return self._write(work)

    @staticmethod
    def _golden(r: m.GoldenQuestion) -> GoldenQuestion:
        return GoldenQuestion(r.id, r.question, list(r.doc_ids), r.added_by, r.origin, r.correction_id,  # type: ignore[arg-type]
                              utc(r.created_at))  # type: ignore[arg-type]

    def golden_set(self) -> list[GoldenQuestion]:
        with self._session() as session:
            return [self._golden(r) for r in session.exec(select(m.GoldenQuestion).order_by(m.GoldenQuestion.id)).all()]

    # -- proposals ----------------------------------------------------------------------------

    def create_proposal(self, *, summary: str, diff: dict, payload: dict, created_by: str) -> ProposalRecord:
        summary = (summary or "").strip()
        if not summary:
            raise InvalidFeedback("a proposal needs a summary")
        diff = _check_json(diff, "the diff")
        payload = _check_json(payload, "the payload")

        def work(session: Session) -> ProposalRecord:
            row = m.Proposal(summary=summary, diff=diff, payload=payload, created_by=created_by or "system")
            session.add(row)
            session.flush()
            self._audit(session, row.created_by, "proposal.create", "proposal", row.id,
                        after={"status": "pending", "summary": summary, "diff": diff})
            return self._proposal_record(row)

        return self._write(work)

    @staticmethod
    def _proposal_record(r: m.Proposal) -> ProposalRecord:
        assert r.id is not None
        return ProposalRecord(
            id=r.id, summary=r.summary, diff=dict(r.diff), payload=dict(r.payload),
            evaluation=None if r.evaluation is None else dict(r.evaluation), status=r.status,
            created_by=r.created_by, created_at=utc(r.created_at),  # type: ignore[arg-type]
            decided_by=r.decided_by, decided_at=utc(r.decided_at), note=r.note,
            override=r.override, applied_version=r.applied_version,
        )

    def _locked_proposal(self, session: Session, proposal_id: int, allowed: Iterable[str], doing: str) -> m.Proposal:
        row = session.exec(select(m.Proposal).where(m.Proposal.id == proposal_id).with_for_update()).first()
        if row is None:
            raise NotFound(f"there is no proposal p{proposal_id}")
        if row.status not in allowed:
            raise InvalidState(f"proposal p{proposal_id} is {row.status}: it cannot be {doing}")
        return row

    def get_proposal(self, proposal_id: int) -> ProposalRecord:
        with self._session() as session:
            row = session.get(m.Proposal, proposal_id)
            if row is None:
                raise NotFound(f"there is no proposal p{proposal_id}")
            return self._proposal_record(row)

    def proposals(self, *, status: str | None = None) -> list[ProposalRecord]:
        with self._session() as session:
            query = select(m.Proposal).order_by(m.Proposal.id)
            if status:
                query = query.where(m.Proposal.status == status)
            return [self._proposal_record(r) for r in session.exec(query).all()]

    def record_evaluation(self, proposal_id: int, evaluation: dict, passed: bool, *, actor: str = "gate") -> ProposalRecord:
        evaluation = _check_json(evaluation, "the evaluation")

        def work(session: Session) -> ProposalRecord:
            row = self._locked_proposal(session, proposal_id, ("pending", "evaluated", "failing"), "evaluated")
            before = {"status": row.status}
            row.evaluation, row.status = evaluation, "evaluated" if passed else "failing"
            session.add(row)
            session.flush()
            self._audit(session, actor, "proposal.evaluate", "proposal", row.id, before=before,
                        after={"status": row.status, "passed": bool(passed), "evaluation": evaluation})
            return self._proposal_record(row)

        return self._write(work)

    def approve_proposal(
        self, proposal_id: int, moderator: str, *, note: str | None = None, override: bool = False
    ) -> ProposalRecord:
        """Approve an evaluated proposal; a failing (or unevaluated) one only with `override`."""
        self.require_moderator(moderator)

        def work(session: Session) -> ProposalRecord:
            row = self._locked_proposal(session, proposal_id, ("pending", "evaluated", "failing"), "approved")
            if row.status != "evaluated" and not override:
                why = "failed its evaluation" if row.status == "failing" else "has not been evaluated yet"
                raise InvalidState(
                    f"proposal p{proposal_id} {why}: approve it anyway only with --override (audited)"
                )
            before = {"status": row.status}
            forced = row.status != "evaluated"
            row.status, row.decided_by, row.decided_at, row.note = "approved", moderator, _now(), note
            row.override = forced
            session.add(row)
            session.flush()
            self._audit(session, moderator, "proposal.approve_override" if forced else "proposal.approve",
                        "proposal", row.id, before=before, after={"status": "approved", "override": forced}, note=note)
            return self._proposal_record(row)

        return self._write(work)

    def reject_proposal(self, proposal_id: int, moderator: str, *, note: str | None = None) -> ProposalRecord:
        self.require_moderator(moderator)

        def work(session: Session) -> ProposalRecord:
            row = self._locked_proposal(session, proposal_id, OPEN_PROPOSAL_STATES, "rejected")
            before = {"status": row.status}
            row.status, row.decided_by, row.decided_at, row.note = "rejected", moderator, _now(), note
            session.add(row)
            session.flush()
            self._audit(session, moderator, "proposal.reject", "proposal", row.id, before=before,
                        after={"status": "rejected"}, note=note)
            return self._proposal_record(row)

        return self._write(work)

    # -- versions -----------------------------------------------------------------------------

    def _lock_pointer(self, session: Session) -> m.ActiveVersion:
        pointer = session.exec(select(m.ActiveVersion).where(m.ActiveVersion.id == 1).with_for_update()).first()
        if pointer is None:  # a database whose seed row was deleted by hand
            pointer = m.ActiveVersion(id=1, number=None)
            session.add(pointer)
            session.flush()
        return pointer

    def _activate(self, session: Session, pointer: m.ActiveVersion, number: int | None, who: str) -> None:
        """Point retrieval at version `number` (None: the base index). Part of the caller's transaction."""
        pointer.number, pointer.changed_at, pointer.changed_by = number, _now(), who
        session.add(pointer)
        session.flush()

    def apply_proposal(self, proposal_id: int, moderator: str) -> VersionRecord:
        """Turn an approved proposal into a new immutable TuningVersion and make it live.

        One transaction: if anything fails, no version is created and the previous one stays active.
        """
        self.require_moderator(moderator)

        def work(session: Session) -> VersionRecord:
            pointer = self._lock_pointer(session)
            proposal = self._locked_proposal(session, proposal_id, ("approved",), "applied (approve it first)")
            previous = pointer.number
            latest = session.exec(select(func.max(m.TuningVersion.number))).one()
            number = int(latest or 0) + 1
            version = m.TuningVersion(number=number, payload=dict(proposal.payload), created_by=moderator,
                                      proposal_id=proposal.id, note=proposal.summary)
            session.add(version)
            session.flush()
            proposal.status, proposal.applied_version = "applied", number
            session.add(proposal)
            session.flush()
            self._activate(session, pointer, number, moderator)
            self._audit(session, moderator, "proposal.apply", "proposal", proposal.id,
                        before={"status": "approved"}, after={"status": "applied", "version": number})
            self._audit(session, moderator, "version.activate", "tuning_version", number,
                        before={"active": previous}, after={"active": number})
            return self._version_record(version, active=True)

        return self._write(work)

    def rollback(self, version_number: int, moderator: str) -> VersionRecord | None:
        """Make an earlier version live again (0 means the base index without any tuning)."""
        self.require_moderator(moderator)

        def work(session: Session) -> VersionRecord | None:
            pointer = self._lock_pointer(session)
            target: m.TuningVersion | None = None
            if version_number != 0:
                target = session.exec(select(m.TuningVersion).where(m.TuningVersion.number == version_number)).first()
                if target is None:
                    raise NotFound(f"there is no version {version_number} (see `askloop versions`)")
            number = target.number if target else None
            if pointer.number == number:
                raise InvalidState(f"version {version_number} is already active")
            previous = pointer.number
            self._activate(session, pointer, number, moderator)
            self._audit(session, moderator, "version.rollback", "tuning_version", version_number,
                        before={"active": previous}, after={"active": number})
            return self._version_record(target, active=True) if target else None

        return self._write(work)

    @staticmethod
    def _version_record(v: m.TuningVersion, active: bool) -> VersionRecord:
        return VersionRecord(number=v.number, payload=dict(v.payload), created_at=utc(v.created_at),  # type: ignore[arg-type]
                             created_by=v.created_by, proposal_id=v.proposal_id, note=v.note, active=active)

    def active_version(self) -> VersionRecord | None:
        """The live tuning version; None while the base index is live."""
        with self._session() as session:
            row = session.exec(
                select(m.TuningVersion)
                .join(m.ActiveVersion, m.ActiveVersion.number == m.TuningVersion.number)
                .where(m.ActiveVersion.id == 1)
            ).first()
            return None if row is None else self._version_record(row, active=True)

    def active_version_number(self) -> int | None:
        with self._session() as session:
            return session.exec(select(m.ActiveVersion.number).where(m.ActiveVersion.id == 1)).first()

    def versions(self) -> list[VersionRecord]:
        with self._session() as session:
            active = session.exec(select(m.ActiveVersion.number).where(m.ActiveVersion.id == 1)).first()
            rows = session.exec(select(m.TuningVersion).order_by(m.TuningVersion.number)).all()
            return [self._version_record(v, active=v.number == active) for v in rows]

    # -- review -------------------------------------------------------------------------------

    def pending_review(self, page: int = 1, per_page: int = 20) -> ReviewPage:
        """Pending corrections and open proposals, oldest first, one page at a time."""
        page, per_page = max(1, page), max(1, min(per_page, 200))
        items: list[ReviewItem] = []
        with self._session() as session:
            for c, question in session.exec(
                select(m.Correction, m.Answer.question).join(m.Answer).where(m.Correction.status == "pending")
            ).all():
                what = " · ".join(
                    part for part in (f"text: {c.text}" if c.text else "", f"source: {c.source_ref}" if c.source_ref else "") if part
                )
                items.append(ReviewItem(f"c{c.id}", "correction", c.id, c.status,  # type: ignore[arg-type]
                                        f"on “{question}” — {what}", c.user_id, utc(c.created_at)))  # type: ignore[arg-type]
            for p in session.exec(select(m.Proposal).where(m.Proposal.status.in_(OPEN_PROPOSAL_STATES))).all():  # type: ignore[attr-defined]
                items.append(ReviewItem(f"p{p.id}", "proposal", p.id, p.status, p.summary,  # type: ignore[arg-type]
                                        p.created_by, utc(p.created_at)))  # type: ignore[arg-type]
        items.sort(key=lambda i: (i.created_at, i.kind, i.id))
        start = (page - 1) * per_page
        return ReviewPage(items[start : start + per_page], page, per_page, len(items))

    # -- Slack delivery dedup -----------------------------------------------------------------

    def claim_event(self, event_id: str) -> bool:
        """True the first time `event_id` is seen (by any replica), False for a retry."""
        if not event_id:
            raise InvalidFeedback("an event id is required")

        def work(session: Session) -> bool:
            statement = self._upsert(m.ProcessedEvent).values(event_id=event_id, at=_now())
            statement = statement.on_conflict_do_nothing(index_elements=["event_id"])
            return session.execute(statement.returning(m.ProcessedEvent.event_id)).first() is not None

        return self._write(work)

    def forget_events(self, older_than: timedelta = timedelta(days=2)) -> int:
        """Drop dedup ids older than Slack's retry horizon; returns how many."""
        return self._write(
            lambda s: s.execute(delete(m.ProcessedEvent).where(m.ProcessedEvent.at < _now() - older_than)).rowcount  # type: ignore[arg-type]
        )

    # -- audit, stats, export -----------------------------------------------------------------

    def audit(self, since: datetime | None = None, limit: int = 200, *, action: str | None = None) -> list[AuditRecord]:
        """The most recent `limit` events (after `since`), oldest first."""
        with self._session() as session:
            query = select(m.AuditEvent).order_by(m.AuditEvent.id.desc()).limit(max(1, limit))  # type: ignore[union-attr]
            if since is not None:
                query = query.where(m.AuditEvent.at >= utc(since))
            if action:
                query = query.where(or_(m.AuditEvent.action == action, m.AuditEvent.action.startswith(action + ".")))  # type: ignore[attr-defined]
            rows = list(session.exec(query).all())
            return [
                AuditRecord(r.id, utc(r.at), r.actor, r.action, r.object_type, r.object_id,  # type: ignore[arg-type]
                            r.before, r.after, r.note)
                for r in reversed(rows)
            ]

    def stats(self, *, now: datetime | None = None) -> StoreStats:
        now = utc(now) or _now()
        windows: list[WindowStats] = []
        with self._session() as session:
            for name, span in STATS_WINDOWS:
                since = None if span is None else now - span
                aq = select(func.count(), func.sum(case((m.Answer.abstained == True, 1), else_=0)))  # noqa: E712
                aq = aq.select_from(m.Answer)
                vq = select(m.Vote.value, func.count()).select_from(m.Vote).group_by(m.Vote.value)
                if since is not None:
                    aq = aq.where(m.Answer.created_at >= since)
                    vq = vq.where(m.Vote.updated_at >= since)
                answers, abstained = session.exec(aq).one()
                counts = dict(session.exec(vq).all())
                windows.append(WindowStats(name, int(answers or 0), int(abstained or 0),
                                           int(counts.get(1, 0)), int(counts.get(-1, 0))))

            def count(model: Any, *where: Any) -> int:
                return int(session.exec(select(func.count()).select_from(model).where(*where)).one())

            return StoreStats(
                windows=windows,
                pending_corrections=count(m.Correction, m.Correction.status == "pending"),
                open_proposals=count(m.Proposal, m.Proposal.status.in_(OPEN_PROPOSAL_STATES)),  # type: ignore[attr-defined]
                active_version=session.exec(select(m.ActiveVersion.number).where(m.ActiveVersion.id == 1)).first(),
                versions=count(m.TuningVersion),
                flagged_users=count(m.FlaggedUser),
                golden_questions=count(m.GoldenQuestion),
            )

    def export_rows(self, *, batch: int = 500) -> Iterator[dict[str, Any]]:
        """One dict per answer, oldest first: question, asker, sources shown, votes, corrections."""
        last = 0
        while True:
            with self._session() as session:
                answers = session.exec(
                    select(m.Answer).where(m.Answer.id > last).order_by(m.Answer.id).limit(batch)  # type: ignore[operator]
                ).all()
                if not answers:
                    return
                ids = [a.id for a in answers]
                shown = self._shown_for(session, ids)  # type: ignore[arg-type]
                votes: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}  # type: ignore[misc]
                for v in session.exec(select(m.Vote).where(m.Vote.answer_id.in_(ids)).order_by(m.Vote.id)).all():  # type: ignore[attr-defined]
                    votes[v.answer_id].append({"user": v.user_id, "value": v.value, "time": utc(v.updated_at).isoformat(),  # type: ignore[union-attr]
                                               "counted": v.counted, "weight": v.weight})
                corrections: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}  # type: ignore[misc]
                for c in session.exec(select(m.Correction).where(m.Correction.answer_id.in_(ids)).order_by(m.Correction.id)).all():  # type: ignore[attr-defined]
                    corrections[c.answer_id].append({
                        "id": c.id, "user": c.user_id, "text": c.text, "source": c.source_ref, "status": c.status,
                        "time": utc(c.created_at).isoformat(), "decided_by": c.decided_by,  # type: ignore[union-attr]
                    })
                for a in answers:
                    yield {
                        "answer_id": a.id,
                        "question": a.question,
                        "asker": a.asker,
                        "origin": a.origin,
                        "channel": a.channel,
                        "time": utc(a.created_at).isoformat(),  # type: ignore[union-attr]
                        "tuning_version": a.tuning_version,
                        "abstained": a.abstained,
                        "answer": a.answer_text,
                        "sources": [s.as_dict() for s in shown[a.id]],  # type: ignore[index]
                        "votes": votes[a.id],  # type: ignore[index]
                        "corrections": corrections[a.id],  # type: ignore[index]
                    }
                last = ids[-1]  # type: ignore[assignment]

    def export(self, fmt: str = "jsonl", out: Any = None) -> str | int:
        """Write every answer with its feedback as `jsonl` or `csv` to `out` (a text stream);
        without `out`, return the text."""
        from feedback.export import export_feedback

        return export_feedback(self, fmt, out)
