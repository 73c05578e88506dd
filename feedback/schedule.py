"""When background learning runs, and the lock that makes it run once across replicas.

- Several replicas run the same check; a database lock makes sure one of them does the work: a
  PostgreSQL advisory lock (`pg_try_advisory_lock`, released by the server if the holder dies)
  or, on SQLite — whose replicas necessarily share one machine — an exclusive lock on a file
  beside the database. Neither holds a database transaction, so answering and voting never wait.
- When to run is decided from the database, so all replicas agree: after `after_votes` new
  validated votes or approved corrections, or every `interval` seconds when there is anything
  new. Each run leaves an audit event (`worker.learn`), which is also the "last run" mark.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from feedback.store import FeedbackStore

log = logging.getLogger("askloop.worker")

LOCK_NAME = "askloop.learning"
RUN_ACTION = "worker.learn"


def _advisory_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class DatabaseLock:
    """A non-blocking, process-spanning lock named `name`, held for the duration of a `with`."""

    _memory_locks: dict[str, threading.Lock] = {}

    def __init__(self, engine: Engine, name: str = LOCK_NAME) -> None:
        self.engine = engine
        self.name = name

    @contextmanager
    def try_hold(self) -> Iterator[bool]:
        """Yields True when this caller holds the lock, False when someone else does."""
        backend = self.engine.url.get_backend_name()
        if backend == "postgresql":
            with self._postgres() as held:
                yield held
        elif backend == "sqlite":
            with self._sqlite() as held:
                yield held
        else:
            raise RuntimeError(f"no background-work lock for the {backend} backend")

    @contextmanager
    def _postgres(self) -> Iterator[bool]:
        key = _advisory_key(self.name)
        with self.engine.connect() as conn:
            held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()  # the lock is session-level: no transaction stays open while we work
            try:
                yield held
            finally:
                if held:
                    try:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                        conn.commit()
                    except Exception:  # connection lost: the server released the lock with it
                        log.warning("could not release the advisory lock; the server drops it with the session")
                        conn.invalidate()

    @contextmanager
    def _sqlite(self) -> Iterator[bool]:
        database = make_url(str(self.engine.url)).database
        if not database or database == ":memory:":
            lock = self._memory_locks.setdefault(self.name, threading.Lock())
            held = lock.acquire(blocking=False)
            try:
                yield held
            finally:
                if held:
                    lock.release()
            return
        path = Path(database).with_name(Path(database).name + f".{self.name}.lock")
        with open(path, "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
            except BlockingIOError:
                held = False
            try:
                yield held
            finally:
                if held:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@dataclass(frozen=True)
class Backlog:
    """What happened since the last run, as the database tells every replica."""

    last_run: datetime | None
    new_votes: int
    new_corrections: int

    @property
    def new_inputs(self) -> int:
        return self.new_votes + self.new_corrections


def backlog(store: FeedbackStore) -> Backlog:
    last = store.audit.last(RUN_ACTION)
    votes, corrections = store.training.new_inputs(last)
    return Backlog(last, votes, corrections)


def is_due(state: Backlog, after_votes: int, interval: float, now: datetime | None = None) -> bool:
    """Due after `after_votes` new inputs, or when `interval` has passed and anything is new."""
    if state.new_inputs == 0:
        return False
    if after_votes > 0 and state.new_inputs >= after_votes:
        return True
    if interval > 0:
        if state.last_run is None:
            return True
        now = now or datetime.now(timezone.utc)
        return (now - state.last_run).total_seconds() >= interval
    return False


def mark_run(store: FeedbackStore, started_at: datetime, outcome: str, detail: str, proposal_id: int | None,
             seconds: float, new_inputs: int) -> None:
    """The run's audit event, dated when it started: input arriving during the run counts next time."""
    from feedback import models

    def work(session: Any) -> None:
        session.add(models.AuditEvent(
            at=started_at, actor="worker", action=RUN_ACTION, object_type="proposal",
            object_id=str(proposal_id or ""),
            after={"outcome": outcome, "detail": detail[:500], "seconds": round(seconds, 3), "new_inputs": new_inputs},
        ))

    store.database.write(work)
