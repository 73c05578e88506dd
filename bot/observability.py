"""Metrics, structured logs and request ids: what an operator needs to run askloop as a service.

Why it is built this way:
- Metrics live in a registry of our own (`REGISTRY`), so tests and several apps in one process
  never collide with prometheus_client's global default registry.
- Counters for answers, votes and corrections are driven by the feedback loop's reports
  (`MetricEvents`, a `feedback.events.LoopEvents`), made after each use case committed, so they
  count what really happened, and no listener has to remember to call a metrics function.
- Figures that must agree across replicas (satisfaction, pending reviews, drift) are read from
  the database at scrape time, cached for a few seconds, instead of being kept per process.
- `instrument(asgi_app)` wraps any ASGI app with `/metrics`, request latency and a request id,
  without a web framework.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, Counter, Histogram, make_asgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("askloop.observability")
access = logging.getLogger("askloop.access")

# -- request / event ids ------------------------------------------------------------------------
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "askloop_request_id", default=None
)
event_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "askloop_event_id", default=None
)


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


@contextmanager
def request_context(request_id: str | None = None, event_id: str | None = None) -> Iterator[str]:
    """Bind a request id (and the Slack event id, when known) to everything logged inside."""
    rid = request_id or new_request_id()
    tokens = [request_id_var.set(rid)]
    if event_id is not None:
        tokens.append(event_id_var.set(event_id))
    try:
        yield rid
    finally:
        for var, token in zip((request_id_var, event_id_var), tokens):
            var.reset(token)


def bind_event_id(event_id: str | None) -> None:
    """Attach a Slack event id to the current context (a listener learns it late)."""
    if event_id:
        event_id_var.set(event_id)


# -- metrics ------------------------------------------------------------------------------------
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
    "askloop_errors", "Errors by where they happened (http, answer, vote, worker, ...)", ["where"],
    registry=REGISTRY,
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

    The listeners already log each failure they turn into an apology; counting those records
    makes every one of them visible on /metrics without touching the listeners.
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


@contextmanager
def timed_retrieval() -> Iterator[None]:
    """Measure one retrieval; failures of the system (not of the question) count as errors."""
    from retrieval.search import EmptyKnowledgeBase, QuestionError

    start = time.perf_counter()
    try:
        yield
    except (QuestionError, EmptyKnowledgeBase):
        raise
    except Exception:
        count_error("retrieval")
        raise
    finally:
        RETRIEVAL_LATENCY.observe(time.perf_counter() - start)


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

    def voted(self, kind: str, counted: bool | None, source: str) -> None:
        VOTES.labels(kind=kind, counted="n/a" if counted is None else str(counted).lower(), source=source).inc()

    def corrected(self, source: str) -> None:
        CORRECTIONS.inc()


# -- figures read from the database at scrape time ---------------------------------------------
class FeedbackCollector(Collector):
    """Satisfaction, pending reviews and today's drift, read from the shared database.

    Every replica reports the same values (they share the database): aggregate with max() or
    avg(), not sum(). Results are cached for `ttl` seconds so frequent scrapes stay cheap.
    """

    def __init__(self, store_factory: Callable[[], Any], threshold: float, ttl: float = 15.0,
                 window_days: int = 7) -> None:
        self._store_factory = store_factory
        self.threshold = threshold
        self.ttl = ttl
        self.window_days = window_days
        self._cached: tuple[float, dict[str, float]] | None = None
        self._lock = threading.Lock()

    def figures(self) -> dict[str, float]:
        with self._lock:
            now = time.monotonic()
            if self._cached and now - self._cached[0] < self.ttl:
                return self._cached[1]
            try:
                values = self._store_factory().gauges(self.window_days)
            except Exception as exc:  # the database is down: report nothing, count the error
                count_error("metrics")
                log.warning("cannot read feedback figures for /metrics: %s", exc)
                return {}
            self._cached = (now, values)
            return values

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        values = self.figures()
        docs = {
            "satisfaction_rate": f"Share of counted votes that are positive, last {self.window_days} days",
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
        for name, text in docs.items():
            if name in values:
                yield GaugeMetricFamily(f"askloop_{name}", text, value=values[name])


_collector_lock = threading.Lock()
_feedback_collector: FeedbackCollector | None = None


def register_feedback_gauges(store_factory: Callable[[], Any], threshold: float,
                             ttl: float = 15.0) -> FeedbackCollector:
    """Expose the database-backed gauges on `REGISTRY` (replaces an earlier registration)."""
    global _feedback_collector
    with _collector_lock:
        if _feedback_collector is not None:
            REGISTRY.unregister(_feedback_collector)
        _feedback_collector = FeedbackCollector(store_factory, threshold, ttl)
        REGISTRY.register(_feedback_collector)
        return _feedback_collector


# -- ASGI wrapper -------------------------------------------------------------------------------
_KNOWN_PATHS = ("/slack/events", "/healthz", "/metrics")
_EVENT_ID = re.compile(rb'"event_id"\s*:\s*"([^"]{1,100})"')


def _path_label(path: str) -> str:
    """A bounded label set: unknown paths are one label, so scanners cannot blow up series."""
    return path if path in _KNOWN_PATHS else "other"


def _event_id_from(body: bytes, content_type: str) -> str | None:
    """The Slack event id (Events API) or the interaction's trigger/action id, if any."""
    match = _EVENT_ID.search(body[:20000])
    if match:
        return match.group(1).decode("utf-8", "replace")
    if "application/x-www-form-urlencoded" in content_type and body:
        form = parse_qs(body.decode("utf-8", "replace"))
        if "payload" not in form:  # a slash command
            return (form.get("trigger_id") or [None])[0]
        try:
            data = json.loads(form["payload"][0])
        except ValueError:
            return None
        return data.get("trigger_id") or (data.get("container") or {}).get("message_ts")
    return None


def instrument(app: Callable[..., Any], *, services: Any = None, store_factory: Callable[[], Any] | None = None,
               threshold: float | None = None, gauge_ttl: float = 15.0) -> Callable[..., Any]:
    """Wrap an ASGI app: serve `/metrics`, time every request, bind a request id to its logs.

    The request id comes from `X-Request-Id` when a proxy sets one, else a new one; it is sent
    back as `X-Request-Id`. The Slack `event_id` is read from the (small) body and bound too.
    Pass `services` to also time retrieval, and `store_factory` (returning the FeedbackStore)
    to expose the database-backed gauges (re-read at most every `gauge_ttl` seconds).
    """
    metrics_app = make_asgi_app(registry=REGISTRY)
    count_logged_errors()
    if store_factory is not None:
        register_feedback_gauges(
            store_factory, threshold if threshold is not None else _default_threshold(services),
            ttl=gauge_ttl,
        )

    async def instrumented(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == "/metrics":
            await metrics_app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        rid = headers.get("x-request-id") or new_request_id()
        # Read the (small) body once, to learn the event id, then replay it to the app.
        chunks: list[bytes] = []
        more = True
        disconnect: dict[str, Any] | None = None
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnect = message
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                if disconnect is not None and not body:
                    return disconnect
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 500

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + [
                    (b"x-request-id", rid.encode("latin-1"))
                ]
            await send(message)

        event_id = _event_id_from(body, headers.get("content-type", ""))
        start = time.perf_counter()
        with request_context(rid, event_id):
            try:
                await app(scope, replay, send_with_id)
            except Exception:
                status = 500  # what the server answers; counted once, below
                log.warning("unhandled error serving %s", path, exc_info=True)  # counted below
                raise
            finally:
                elapsed = time.perf_counter() - start
                REQUEST_LATENCY.labels(
                    method=scope.get("method", ""), path=_path_label(path), status=str(status)
                ).observe(elapsed)
                if status >= 500:
                    count_error("http")
                # One access line per request (health checks only at DEBUG): with the ids bound,
                # it ties Slack's event to everything logged while handling it.
                access.log(logging.DEBUG if path == "/healthz" else logging.INFO,
                           "%s %s %s %.1f ms", scope.get("method"), path, status, elapsed * 1000,
                           extra={"method": scope.get("method"), "path": path, "status": status,
                                  "duration_ms": round(elapsed * 1000, 1)})

    return instrumented


def _default_threshold(services: Any) -> float:
    if services is not None:
        return float(services.settings.answer_threshold)
    from bot.settings import load_settings

    return float(load_settings().answer_threshold)


# -- structured logs ----------------------------------------------------------------------------
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "color_message", "ids", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request/event ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id_var.get()
        eid = getattr(record, "event_id", None) or event_id_var.get()
        if rid:
            entry["request_id"] = rid
        if eid:
            entry["event_id"] = eid
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in entry and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            entry["error"] = "".join(traceback.format_exception_only(*record.exc_info[:2])).strip()
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Readable lines for a terminal, with the request id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(ids)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        rid = request_id_var.get()
        eid = event_id_var.get()
        ids = "".join(f" [{label}={value}]" for label, value in (("req", rid), ("event", eid)) if value)
        record.ids = ids
        return super().format(record)


def make_formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return TextFormatter()
    raise ValueError(f"unknown log format {fmt!r}: use json or text")


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at emit time, not the one current at set-up.

    A handler bound to a replaced stderr (a test runner's capture, a closed pipe) would turn
    every later log line into a "--- Logging error ---" traceback.
    """

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it; ignore
        pass


def configure_logging(fmt: str = "text", level: str | int = "INFO") -> None:
    """Root logging to stderr in the chosen format; uvicorn's loggers propagate into it."""
    handler = _CurrentStderrHandler()
    handler.setFormatter(make_formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_askloop", False):
            root.removeHandler(old)
    handler._askloop = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    quiet_chatty_libraries(root.level)


# HTTP client libraries log every request at INFO (one line per Chroma query, per Slack call).
CHATTY_LOGGERS = ("httpx", "httpcore", "chromadb", "urllib3", "slack_sdk.web.async_base_client",
                  "slack_bolt")


def quiet_chatty_libraries(level: int) -> None:
    """Keep their lines at WARNING and above unless we are debugging."""
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level <= logging.DEBUG else logging.WARNING)


def uvicorn_log_config(fmt: str = "text", level: str = "INFO") -> dict[str, Any]:
    """A `log_config` for `uvicorn.run` so its own lines come out in the same format."""
    formatter = "bot.observability.JsonFormatter" if fmt == "json" else "bot.observability.TextFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"askloop": {"()": formatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "askloop"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            **{name: {"level": "DEBUG" if level.upper() == "DEBUG" else "WARNING"} for name in CHATTY_LOGGERS},
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
        },
    }


def configure_from_settings(settings: Any) -> None:
    configure_logging(getattr(settings, "log_format", "text"), getattr(settings, "log_level", "INFO"))
