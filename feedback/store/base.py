"""What every part of the feedback store shares: the engine, transactions, retries, the audit row.

Each concept of the store (answers, votes, corrections, …) is a small class over one `Database`.
A method that changes something is one transaction that also writes its AuditEvent, so a crash
leaves either the old state or the new one, never a mix. Conflicting writers are resolved by the
database (unique constraints with upserts, row and advisory locks), and transient lock or
serialization failures are retried here, once for everyone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import Connection, Engine, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from feedback import db
from feedback import models as m
from feedback.errors import InvalidFeedback, UnknownAnswer
from feedback.records import ShownDoc
from feedback.text import clean_text

T = TypeVar("T")

MAX_TEXT = 4000
MAX_QUESTION = 20000
_RETRIES = 8
AUDIT_TABLE = m.AuditEvent.__table__  # type: ignore[attr-defined]


def utc(value: datetime | None) -> datetime | None:
    """Aware UTC datetimes in and out (SQLite hands back naive ones)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def aware(value: datetime | None) -> datetime:
    """`utc` for columns that are never NULL."""
    converted = utc(value)
    assert converted is not None, "a timestamp column that must be set was empty"
    return converted


def now() -> datetime:
    return datetime.now(timezone.utc)


def _transient(exc: OperationalError) -> bool:
    text = str(exc.orig if exc.orig is not None else exc).lower()
    code = getattr(exc.orig, "sqlstate", None)
    return code in {"40001", "40P01"} or "locked" in text or "busy" in text or "deadlock" in text


def answer_id_of(value: object) -> int:
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


def user_text(value: str | None, what: str, limit: int = MAX_TEXT) -> str | None:
    """Text a person typed, cleaned of control characters (PostgreSQL refuses NUL), None when
    blank; refused when longer than `limit`."""
    cleaned = clean_text(value or "").strip()
    if not cleaned:
        return None
    if len(cleaned) > limit:
        raise InvalidFeedback(f"{what} is too long (the limit is {limit:,} characters)")
    return cleaned


def check_json(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidFeedback(f"{what} must be a JSON object")
    try:
        copied = json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise InvalidFeedback(f"{what} is not valid JSON: {exc}") from None
    assert isinstance(copied, dict)
    return copied


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
    name = (model or "").strip()
    if not name:
        raise InvalidFeedback("a question vector needs the name of the model that computed it")
    return array.astype(VECTOR_DTYPE).tobytes(), name[:200]


def unpack_vector(blob: bytes | None) -> np.ndarray | None:
    """The stored bytes back as a float32 vector (None stays None)."""
    if not blob:
        return None
    return np.frombuffer(blob, dtype=VECTOR_DTYPE).astype(np.float32)


def shown_doc(s: m.ShownSource) -> ShownDoc:
    return ShownDoc(s.rank, s.doc_id, s.chunk_id, s.title, s.source, s.score, s.base_score)


class Database:
    """One engine for the whole store; sessions are short and per call, so it is thread-safe."""

    def __init__(self, url: str, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or db.make_engine(url)
        self.dialect = self.engine.dialect.name
        self.upsert = sqlite_insert if self.dialect == "sqlite" else pg_insert
        self._reader = self.engine.execution_options(read_only=True)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reading only (on SQLite it takes no write lock)."""
        with Session(self._reader, expire_on_commit=False) as session:
            yield session

    def retrying(self, attempt: Callable[[], T]) -> T:
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

    def write(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one transaction, retrying when the database reports a transient lock."""

        def attempt() -> T:
            with Session(self.engine, expire_on_commit=False) as session:
                with session.begin():
                    return work(session)

        return self.retrying(attempt)

    def write_core(self, work: Callable[[Connection], T]) -> T:
        """Like `write` on a plain Core connection: for the hot path (votes), no ORM overhead."""

        def attempt() -> T:
            with self.engine.begin() as connection:
                return work(connection)

        return self.retrying(attempt)

    def shown_for(self, session: Session, answer_ids: Iterable[int]) -> dict[int, list[ShownDoc]]:
        """The sources shown with each answer, by answer id, in rank order."""
        ids = sorted(set(answer_ids))
        result: dict[int, list[ShownDoc]] = {i: [] for i in ids}
        for start in range(0, len(ids), 500):
            rows = session.exec(
                select(m.ShownSource)
                .where(m.ShownSource.answer_id.in_(ids[start : start + 500]))  # type: ignore[attr-defined]
                .order_by(m.ShownSource.answer_id, m.ShownSource.rank)  # type: ignore[arg-type]
            ).all()
            for s in rows:
                result[s.answer_id].append(shown_doc(s))
        return result


def audit(
    session: Session,
    actor: str,
    action: str,
    object_type: str,
    object_id: object,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    note: str | None = None,
) -> None:
    """Append one AuditEvent to the caller's transaction."""
    session.add(
        m.AuditEvent(
            actor=actor[:200],
            action=action[:60],
            object_type=object_type[:40],
            object_id=str(object_id)[:200],
            before=before,
            after=after,
            note=note,
        )
    )


def audit_row(
    actor: str, action: str, object_type: str, object_id: object,
    before: dict[str, Any] | None = None, after: dict[str, Any] | None = None, note: str | None = None,
) -> dict[str, Any]:
    """The column values of an AuditEvent, for Core inserts on the hot path."""
    return {"at": now(), "actor": actor[:200], "action": action[:60], "object_type": object_type[:40],
            "object_id": str(object_id)[:200], "before": before, "after": after, "note": note}


def insert_audit(connection: Connection, row: dict[str, Any]) -> None:
    connection.execute(insert(AUDIT_TABLE), row)
