"""Background learning: build and evaluate proposals outside the request path, once across replicas.

Why this shape:
- Building a proposal replays the golden set through retrieval (seconds of CPU). Doing it inside
  a Slack request would blow the 3-second ack, so it runs in a background thread of the server
  (`start_background`) or in its own process (`askloop worker`).
- Several replicas run the same loop; a database lock makes sure one of them does the work:
  a PostgreSQL advisory lock (`pg_try_advisory_lock`, released by the server if the holder dies)
  or, on SQLite — whose replicas necessarily share one machine — an exclusive lock on a file
  beside the database. Neither holds a database transaction, so answering and voting never wait.
- When to run is decided from the database, so all replicas agree: after `learn_after_votes`
  new validated votes or approved corrections, or every `learn_interval` seconds when there is
  anything new. Each run leaves an audit event ("worker.learn"), which is also the "last run" mark.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from bot import observability
from feedback import models
from feedback.drift import engine_of

log = logging.getLogger("askloop.worker")

LOCK_NAME = "askloop.learning"
RUN_ACTION = "worker.learn"


# -- the lock -----------------------------------------------------------------------------------
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


# -- when to run --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backlog:
    """What happened since the last run, as the database tells every replica."""

    last_run: datetime | None
    new_votes: int
    new_corrections: int

    @property
    def new_inputs(self) -> int:
        return self.new_votes + self.new_corrections


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def backlog(engine: Engine) -> Backlog:
    with engine.connect() as conn:
        last = _utc(conn.execute(
            select(func.max(models.AuditEvent.at)).where(models.AuditEvent.action == RUN_ACTION)
        ).scalar_one_or_none())
        votes = select(func.count()).select_from(models.VoteEvent).where(
            models.VoteEvent.counted.is_(True), models.VoteEvent.value != 0
        )
        corrections = select(func.count()).select_from(models.Correction).where(
            models.Correction.status == "approved"
        )
        if last is not None:
            votes = votes.where(models.VoteEvent.at > last)
            corrections = corrections.where(models.Correction.decided_at > last)
        return Backlog(last, int(conn.execute(votes).scalar_one()), int(conn.execute(corrections).scalar_one()))


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


# -- the job ------------------------------------------------------------------------------------
@dataclass
class RunReport:
    outcome: str  # built | nothing | skipped_locked | not_due | failed
    detail: str = ""
    proposal_id: int | None = None
    seconds: float = 0.0
    backlog: Backlog | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Job = Callable[[], Any]


def learning_job(services: Any, store: Any, created_by: str = "worker", strategy: str = "askloop") -> Job:
    """Build a proposal from validated feedback, record it, and evaluate it (the gate).

    Returns the evaluated ProposalRecord, or None when the feedback yields nothing new (the
    same payload is already live or already waiting for review) — so a schedule never piles up
    identical proposals.
    """

    def run() -> Any:
        # The same steps as `askloop learn`, unattended.
        from feedback.gate import GateConfig, evaluate_proposal
        from feedback.learning import learn_from_store

        learned = learn_from_store(
            store, services.embedder, chunk_store=services.store, strategy=strategy, params=services.learning_params()
        )
        payload_id = learned.payload.get("id")
        empty = not learned.memories and not learned.payload.get("passages")
        if learned.strategy == "none" or empty:
            return None
        known = _already_known(store, payload_id)
        if known is not None and getattr(known, "status", "live") != "pending":
            return None  # live already, or measured and waiting for a moderator
        # A known but unevaluated proposal (an earlier evaluation failed) is evaluated now.
        proposal = known or store.create_proposal(
            summary=learned.summary, diff=learned.diff, payload=learned.payload, created_by=created_by
        )
        # Measured before any moderator sees it: the evaluation gate, as `askloop learn` runs it.
        return evaluate_proposal(
            store, services.knowledge_base, proposal, GateConfig.from_settings(services.settings)
        )

    return run


def _already_known(store: Any, payload_id: Any) -> Any:
    """The active version or open proposal that carries this exact payload, if any."""
    if not payload_id:
        return None
    active = store.active_version()
    if active is not None and active.payload.get("id") == payload_id:
        return active
    from feedback.store import OPEN_PROPOSAL_STATES

    for proposal in store.proposals():
        if proposal.status in OPEN_PROPOSAL_STATES and proposal.payload.get("id") == payload_id:
            return proposal
    return None


def _proposal_id(result: Any) -> int | None:
    """The id of what a job returned (a ProposalRecord), or None when it made no proposal."""
    pid = getattr(result, "id", None)
    return pid if isinstance(pid, int) else None


class LearningWorker:
    """Checks the backlog, takes the lock, runs the job, leaves a mark; safe on every replica."""

    def __init__(self, engine: Engine, job: Job, *, after_votes: int = 20, interval: float = 3600.0,
                 poll: float = 30.0, lock_name: str = LOCK_NAME) -> None:
        self.engine = engine
        self.job = job
        self.after_votes = after_votes
        self.interval = interval
        self.poll = poll
        self.lock = DatabaseLock(engine, lock_name)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_services(cls, services: Any, store: Any, **kwargs: Any) -> LearningWorker:
        settings = services.settings
        kwargs.setdefault("after_votes", getattr(settings, "learn_after_votes", 20))
        kwargs.setdefault("interval", getattr(settings, "learn_interval", 3600.0))
        kwargs.setdefault("poll", getattr(settings, "learn_poll", 30.0))
        return cls(engine_of(store), learning_job(services, store), **kwargs)

    def run_once(self, *, force: bool = False) -> RunReport:
        """One check-and-maybe-run. `force` runs even without new feedback (but still locked)."""
        start = time.perf_counter()
        with self.lock.try_hold() as held:
            if not held:
                observability.WORKER_RUNS.labels(outcome="skipped_locked").inc()
                return RunReport("skipped_locked", "another replica is building a proposal")
            # Checked under the lock: a replica that just finished has already left its mark.
            state = backlog(self.engine)
            if not force and not is_due(state, self.after_votes, self.interval):
                return RunReport("not_due", f"{state.new_inputs} new input(s)", backlog=state)
            # The mark carries the start time: input arriving while the job runs counts next time.
            started_at = datetime.now(timezone.utc)
            try:
                result = self.job()
            except Exception as exc:
                observability.count_error("worker")
                observability.WORKER_RUNS.labels(outcome="failed").inc()
                log.exception("background learning failed")
                report = RunReport("failed", f"{exc.__class__.__name__}: {exc}", backlog=state)
            else:
                pid = _proposal_id(result)
                outcome = "built" if pid is not None else "nothing"
                observability.WORKER_RUNS.labels(outcome=outcome).inc()
                report = RunReport(outcome, "" if pid else "no proposal to make", pid, backlog=state)
            report.seconds = time.perf_counter() - start
            self._mark(report, started_at)
            log.info("background learning: %s", report.outcome,
                     extra={"proposal_id": report.proposal_id, "seconds": round(report.seconds, 3),
                            "new_inputs": state.new_inputs})
            return report

    def _mark(self, report: RunReport, started_at: datetime) -> None:
        with Session(self.engine) as session, session.begin():
            session.add(models.AuditEvent(
                at=started_at, actor="worker", action=RUN_ACTION, object_type="proposal",
                object_id=str(report.proposal_id or ""),
                after={"outcome": report.outcome, "detail": report.detail[:500],
                       "seconds": round(report.seconds, 3),
                       "new_inputs": report.backlog.new_inputs if report.backlog else 0},
            ))

    # -- the loop -------------------------------------------------------------------------------
    def loop(self) -> None:
        """Run until `stop()`: never raises, so a database outage only delays learning."""
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # database unreachable, lock failure: try again later
                observability.count_error("worker")
                log.warning("background learning check failed: %s", exc)
            self._stop.wait(self.poll)

    def start_background(self) -> threading.Thread:
        """Start the loop in a daemon thread (idempotent) — the server's request path never waits on it."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self.loop, name="askloop-worker", daemon=True)
            self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
