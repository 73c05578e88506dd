"""Prometheus series: what the loop did (counted as it commits) and what the database holds.

- The series live in a registry of our own (`REGISTRY`), so tests and several apps in one
  process never collide with prometheus_client's global default registry.
- Answers, votes, corrections and retrieval times are counted by `MetricEvents`, the
  `feedback.events.LoopEvents` the bot hands to the feedback loop: the loop reports each use
  case after it committed, so a refused or rolled-back write never counts, and nothing is patched.
- Figures that must agree across replicas (satisfaction, pending reviews, drift) are read from
  the database by a callable the bot passes (`FeedbackGauges`), refreshed before a scrape on a
  thread with a deadline and cached, so a stalled database never holds the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bot.observability.probes import Probe
from feedback.events import VoteKind

log = logging.getLogger("askloop.observability")

REGISTRY = CollectorRegistry(auto_describe=True)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

ANSWERS = Counter(
    "askloop_answers", "Answers recorded (abstentions included)", ["origin"], registry=REGISTRY
)
ABSTENTIONS = Counter(
    "askloop_abstentions",
    "Answers where no source scored above the answer threshold",
    ["origin"],
    registry=REGISTRY,
)
VOTES = Counter(
    "askloop_votes",
    "Vote actions recorded, by kind (up, down, removed), whether they counted, and where from",
    ["kind", "counted", "source"],
    registry=REGISTRY,
)
CORRECTIONS = Counter(
    "askloop_corrections", "Corrections suggested by users", registry=REGISTRY
)
ERRORS = Counter(
    "askloop_errors", "Errors by where they happened (http, retrieval, worker, metrics, a logger)",
    ["where"], registry=REGISTRY,
)
REQUEST_LATENCY = Histogram(
    "askloop_request_duration_seconds",
    "HTTP request latency (time to the response, i.e. Slack's ack), by path and status",
    ["method", "path", "status"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
RETRIEVAL_LATENCY = Histogram(
    "askloop_retrieval_duration_seconds",
    "Time to embed a question and search the vector store",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
WORKER_RUNS = Counter(
    "askloop_worker_runs",
    "Background learning runs by outcome (built, nothing, skipped_locked, failed)",
    ["outcome"],
    registry=REGISTRY,
)


def count_error(where: str) -> None:
    ERRORS.labels(where=where).inc()


class ErrorCounter(logging.Handler):
    """Counts every ERROR logged by an askloop component as `askloop_errors_total{where=logger}`.

    The listeners log each failure they turn into an apology; counting those records makes
    every one of them visible on /metrics without a metrics call in each listener.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)

    def emit(self, record: logging.LogRecord) -> None:
        count_error(record.name)


_error_counter = ErrorCounter()


def count_logged_errors() -> None:
    """Install the ErrorCounter on the `askloop` logger (idempotent)."""
    logger = logging.getLogger("askloop")
    if _error_counter not in logger.handlers:
        logger.addHandler(_error_counter)


class MetricEvents:
    """`feedback.events.LoopEvents` as Prometheus series: what the loop committed, counted."""

    def answered(self, origin: str, abstained: bool) -> None:
        ANSWERS.labels(origin=origin).inc()
        if abstained:
            ABSTENTIONS.labels(origin=origin).inc()

    def retrieved(self, seconds: float, failed: bool) -> None:
        RETRIEVAL_LATENCY.observe(seconds)
        if failed:
            count_error("retrieval")

    def voted(self, kind: VoteKind, counted: bool | None, source: str) -> None:
        VOTES.labels(kind=kind, counted="n/a" if counted is None else str(bool(counted)).lower(),
                     source=source).inc()

    def corrected(self, source: str) -> None:
        CORRECTIONS.inc()


GAUGE_HELP = {
    "satisfaction_rate": "Weighted share of positive counted votes over the recent window",
    "pending_reviews": "Corrections and proposals waiting for a moderator",
    "pending_corrections": "Corrections waiting for a moderator",
    "pending_proposals": "Proposals waiting for a moderator",
    "drift_low_score_share": "Today's share of questions whose best match scores below the answer threshold",
    "questions_today": "Questions answered today (UTC)",
    "active_tuning_version": "The active tuning version number (0: base index)",
    "knowledge_gaps": "Groups of similar questions the knowledge base could not answer, last 30 days",
    "knowledge_gap_questions": "Questions the knowledge base could not answer (voted abstentions, "
                               "👎 without a correction), last 30 days",
}


class FeedbackGauges(Collector):
    """Satisfaction, pending reviews, drift and the active version, read from the database.

    `read` returns the figures by name (the keys of GAUGE_HELP; a missing key is not exported,
    e.g. no satisfaction without votes). Every replica reports the same values: aggregate
    with max(), not sum().

    prometheus_client collects synchronously inside its ASGI app, i.e. on the event loop, so
    `collect` never touches the database: `refresh` (awaited by the /metrics route before the
    scrape) reads on a thread with a deadline and caches for `ttl` seconds. When the read
    fails or is late the gauges are omitted, never faked, and `askloop_errors_total{where=
    "metrics"}` goes up.
    """

    def __init__(self, read: Callable[[], Mapping[str, float]], ttl: float = 15.0,
                 deadline: float = 1.0) -> None:
        self.ttl = ttl
        self.deadline = deadline
        self._probe: Probe[Mapping[str, float]] = Probe("metrics", read)
        self._values: dict[str, float] = {}
        self._read_at: float | None = None

    async def refresh(self) -> None:
        now = time.monotonic()
        if self._read_at is not None and now - self._read_at < self.ttl:
            return
        try:
            values = await self._probe.run(self.deadline)
        except Exception as exc:  # the database is down or stalled: report nothing, count it
            count_error("metrics")
            log.warning("cannot read feedback figures for /metrics: %s", exc.__class__.__name__,
                        extra={"error": str(exc).splitlines()[0][:300] if str(exc) else ""})
            self._values, self._read_at = {}, None
            return
        self._values = {k: float(v) for k, v in values.items() if k in GAUGE_HELP and v is not None}
        self._read_at = time.monotonic()

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        for name, text in GAUGE_HELP.items():
            if name in self._values:
                yield GaugeMetricFamily(f"askloop_{name}", text, value=self._values[name])


_gauges: FeedbackGauges | None = None


def register_feedback_gauges(read: Callable[[], Mapping[str, float]], *, ttl: float = 15.0,
                             deadline: float = 1.0) -> FeedbackGauges:
    """Expose the database-backed gauges on `REGISTRY` (replacing an earlier registration)."""
    global _gauges
    if _gauges is not None:
        REGISTRY.unregister(_gauges)
    _gauges = FeedbackGauges(read, ttl=ttl, deadline=deadline)
    REGISTRY.register(_gauges)
    return _gauges
