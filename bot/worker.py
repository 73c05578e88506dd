"""Background learning and housekeeping, outside the request path, once across replicas.

Building a proposal replays the golden set through retrieval (seconds of CPU): inside a Slack
request it would blow the 3-second ack, so it runs in a thread of the server
(`start_background`) or in its own process (`askloop worker`). The rules — when learning is due,
the lock that makes one replica do it, the mark each run leaves — live in `feedback.schedule`;
the learning itself is `FeedbackLoop.learn`. This module only schedules, counts and logs.
Every run also prunes the delivery keys kept for idempotency (older than Slack's retries).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bot import observability
from feedback.loop import FeedbackLoop
from feedback.schedule import LOCK_NAME, Backlog, DatabaseLock, backlog, is_due, mark_run

log = logging.getLogger("askloop.worker")

__all__ = ["Backlog", "LearningWorker", "RunReport", "backlog", "is_due"]


@dataclass
class RunReport:
    outcome: str  # built | nothing | skipped_locked | not_due | failed
    detail: str = ""
    proposal_id: int | None = None
    seconds: float = 0.0
    backlog: Backlog | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Job = Callable[[], Any]


def learning_job(loop: FeedbackLoop, created_by: str = "worker", strategy: str = "askloop") -> Job:
    """Build, record and evaluate a proposal (`FeedbackLoop.learn`); returns the proposal it
    evaluated, or None when the feedback yields nothing new."""

    def run() -> Any:
        outcome = loop.learn(created_by, strategy)
        return outcome.proposal if outcome.evaluated else None

    return run


def _proposal_id(result: Any) -> int | None:
    pid = getattr(result, "id", None)
    return pid if isinstance(pid, int) else None


class LearningWorker:
    """Checks the backlog, takes the lock, runs the job, leaves a mark; safe on every replica."""

    def __init__(self, loop: FeedbackLoop, job: Job | None = None, *, after_votes: int = 20,
                 interval: float = 3600.0, poll: float = 30.0, lock_name: str = LOCK_NAME) -> None:
        self.loop = loop
        self.job = job or learning_job(loop)
        self.after_votes = after_votes
        self.interval = interval
        self.poll = poll
        self.lock = DatabaseLock(loop.store.engine, lock_name)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, loop: FeedbackLoop, settings: Any, **kwargs: Any) -> LearningWorker:
        kwargs.setdefault("after_votes", settings.learn_after_votes)
        kwargs.setdefault("interval", settings.learn_interval)
        kwargs.setdefault("poll", settings.learn_poll)
        return cls(loop, **kwargs)

    def run_once(self, *, force: bool = False) -> RunReport:
        """One check-and-maybe-run. `force` runs even without new feedback (but still locked)."""
        start = time.perf_counter()
        with self.lock.try_hold() as held:
            if not held:
                observability.WORKER_RUNS.labels(outcome="skipped_locked").inc()
                return RunReport("skipped_locked", "another replica is building a proposal")
            self._prune()
            # Checked under the lock: a replica that just finished has already left its mark.
            state = backlog(self.loop.store)
            if not force and not is_due(state, self.after_votes, self.interval):
                return RunReport("not_due", f"{state.new_inputs} new input(s)", backlog=state)
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
            mark_run(self.loop.store, started_at, report.outcome, report.detail, report.proposal_id,
                     report.seconds, state.new_inputs)
            log.info("background learning: %s", report.outcome,
                     extra={"proposal_id": report.proposal_id, "seconds": round(report.seconds, 3),
                            "new_inputs": state.new_inputs})
            return report

    def _prune(self) -> None:
        try:
            pruned = self.loop.prune_deliveries()
        except Exception as exc:  # housekeeping must not stop learning
            log.warning("could not prune old delivery keys: %s", exc)
            return
        if pruned:
            log.info("pruned %d delivery key(s) older than Slack's retries", pruned)

    # -- the loop -------------------------------------------------------------------------------
    def loop_forever(self) -> None:
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
            self._thread = threading.Thread(target=self.loop_forever, name="askloop-worker", daemon=True)
            self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
