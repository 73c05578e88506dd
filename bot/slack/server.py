"""HTTP mode: one Starlette app with Slack's `/slack/events`, `/healthz` and `/metrics`.

Replicas are stateless (dedup and state live in the database), so several can run behind a
load balancer. `build_asgi` is the whole HTTP edge, given what it serves:

- `/slack/events`: the body limit, then Slack's signature verified on the raw bytes
  (`bot.slack.guard`), then bolt (its Starlette adapter) — junk never reaches bolt's parser;
- `/healthz`: "ok"/"degraded" within a deadline, details in the log (`bot.observability.health`);
- `/metrics`: prometheus_client's ASGI app, after the database-backed gauges were refreshed
  off the event loop (`bot.observability.metrics.FeedbackGauges`);
- middleware for the request id, latency and access line (`RequestObservation`) around the
  body limit (`BodyLimit`), so refusals are timed and logged like everything else;
- the lifespan starts the background tasks it is given (the review-queue watcher) and stops
  them on shutdown, under any ASGI server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import make_asgi_app
from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.async_app import AsyncApp
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bot.observability.context import bind_event_id
from bot.observability.health import Health, HealthCheck
from bot.observability.http import RequestObservation
from bot.observability.metrics import REGISTRY, count_logged_errors, register_feedback_gauges
from bot.slack.guard import BodyLimit, verify_slack_request

log = logging.getLogger("askloop.slack.server")

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class EdgeLimits:
    max_body_bytes: int = 1024 * 1024  # Slack's largest payloads are a few hundred kB
    health_deadline: float = 1.5  # /healthz answers within this (plus scheduling), i.e. < 2 s
    gauge_ttl: float = 15.0  # database-backed gauges are re-read at most this often
    gauge_deadline: float = 1.0  # ...and a scrape waits at most this long for them


class SlackEvents:
    """`/slack/events`: verify first, then hand the request to bolt."""

    def __init__(self, bolt_app: AsyncApp, signing_secret: str) -> None:
        self.bolt_app = bolt_app
        self.signing_secret = signing_secret

    async def __call__(self, request: Request) -> Response:
        body = await request.body()  # bounded by BodyLimit
        refusal = verify_slack_request(body, request.headers, self.signing_secret)
        if refusal is not None:
            log.debug("refused a request: %s", refusal.reason, extra={"status": refusal.status})
            return PlainTextResponse("invalid request\n", status_code=refusal.status)
        try:
            bolt_request = to_async_bolt_request(request, body)
        except Exception as exc:  # signed, but not something bolt can read
            log.debug("refused a signed request bolt cannot read: %s", exc.__class__.__name__)
            return PlainTextResponse("malformed request\n", status_code=400)
        bind_event_id(_event_id(bolt_request.body))
        return to_starlette_response(await self.bolt_app.async_dispatch(bolt_request))


def _event_id(body: Mapping[str, Any]) -> object:
    """Slack's event id (Events API), or the interaction's or command's trigger id."""
    container = body.get("container")
    return (body.get("event_id") or body.get("trigger_id")
            or (container.get("message_ts") if isinstance(container, dict) else None))


class MetricsEndpoint:
    """prometheus_client's ASGI app, after the database-backed gauges had their chance to refresh."""

    def __init__(self, refresh: Callable[[], Awaitable[None]] | None) -> None:
        self.refresh = refresh
        self.app = make_asgi_app(registry=REGISTRY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.refresh is not None:
            await self.refresh()
        await self.app(scope, receive, send)


def health_endpoint(health: Health) -> Callable[[Request], Awaitable[Response]]:
    async def healthz(request: Request) -> Response:
        report = await health.report()
        return JSONResponse(report.public(), status_code=report.http_status)

    return healthz


def edge_middleware(limits: EdgeLimits) -> list[Middleware]:
    """Outermost first: observe every request (refusals included), then limit its body."""
    return [
        Middleware(RequestObservation, known_paths=(EVENTS_PATH, HEALTH_PATH, METRICS_PATH),
                   quiet_paths=(HEALTH_PATH,)),
        Middleware(BodyLimit, max_bytes=limits.max_body_bytes),
    ]


def build_asgi(
    bolt_app: AsyncApp,
    *,
    signing_secret: str,
    health: Sequence[HealthCheck] = (),
    gauges: Callable[[], Mapping[str, float]] | None = None,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    limits: EdgeLimits = EdgeLimits(),
) -> Starlette:
    """The ASGI app `askloop serve --http` runs.

    `health`: the checks behind /healthz (a failing required one makes it 503). `gauges`: reads
    the database-backed figures for /metrics (names as in `metrics.GAUGE_HELP`). `background`:
    coroutines to run for the app's lifetime (started at startup, cancelled at shutdown).
    """
    count_logged_errors()
    refresh = None
    if gauges is not None:
        refresh = register_feedback_gauges(gauges, ttl=limits.gauge_ttl, deadline=limits.gauge_deadline).refresh

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(run()) for run in background]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()

    return Starlette(
        routes=[
            Route(EVENTS_PATH, SlackEvents(bolt_app, signing_secret).__call__, methods=["POST"]),
            Route(HEALTH_PATH, health_endpoint(Health(health, limits.health_deadline)), methods=["GET", "HEAD"]),
            Route(METRICS_PATH, MetricsEndpoint(refresh), methods=["GET"]),
        ],
        middleware=edge_middleware(limits),
        lifespan=lifespan,
    )


def asgi_app(app: AsyncApp, deps: Any) -> Starlette:
    """`build_asgi` wired to the bot's dependencies (what `askloop serve --http` serves)."""
    from bot.slack.review import watch_review_queue

    settings = deps.settings
    background: list[Callable[[], Coroutine[Any, Any, None]]] = []
    if settings.review_channel and settings.slack_review_poll > 0:
        background.append(lambda: watch_review_queue(deps, app.client))
    return build_asgi(
        app,
        signing_secret=settings.slack_signing_secret or "",
        health=[
            HealthCheck("database", deps.loop.store.ping, required=True),
            HealthCheck("knowledge_base", lambda: deps.services.store.count(), required=False),
        ],
        gauges=deps.loop.gauges,
        background=background,
        limits=EdgeLimits(max_body_bytes=settings.http_max_body),
    )
