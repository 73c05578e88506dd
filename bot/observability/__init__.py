"""What an operator needs to run askloop as a service, by concept:

- `context`: the request id and Slack event id every log line of a request carries;
- `logs`: JSON or text log lines, escaped and bounded, and logging set-up;
- `metrics`: the Prometheus series, `MetricEvents` (the loop's events as counters) and the
  database-backed gauges;
- `http`: the ASGI middleware that times requests, returns the request id and writes the
  access line;
- `health`: `/healthz`'s checks with a deadline;
- `probes`: blocking checks run from the event loop with a deadline, one thread at a time.

The names most callers need are re-exported here.
"""

from bot.observability.context import bind_event_id, new_request_id, request_context
from bot.observability.health import Health, HealthCheck, HealthReport
from bot.observability.logs import (
    JsonFormatter,
    TextFormatter,
    configure_from_settings,
    configure_logging,
    make_formatter,
    uvicorn_log_config,
)
from bot.observability.metrics import (
    ERRORS,
    REGISTRY,
    WORKER_RUNS,
    FeedbackGauges,
    MetricEvents,
    count_error,
    count_logged_errors,
    register_feedback_gauges,
)

__all__ = [
    "ERRORS",
    "REGISTRY",
    "WORKER_RUNS",
    "FeedbackGauges",
    "Health",
    "HealthCheck",
    "HealthReport",
    "JsonFormatter",
    "MetricEvents",
    "TextFormatter",
    "bind_event_id",
    "configure_from_settings",
    "configure_logging",
    "count_error",
    "count_logged_errors",
    "make_formatter",
    "new_request_id",
    "register_feedback_gauges",
    "request_context",
    "uvicorn_log_config",
]
