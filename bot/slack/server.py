"""HTTP mode: bolt's `/slack/events` endpoint plus `/healthz`, as one ASGI app for uvicorn.

Replicas are stateless (dedup and state live in the database), so several can run behind a load
balancer. The review-queue watcher starts with the ASGI lifespan, so it runs under any server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.adapter.asgi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp

from bot.slack.deps import BotDeps, log
from bot.slack.review import watch_review_queue

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

EVENTS_PATH = "/slack/events"


def health(deps: BotDeps) -> tuple[int, dict[str, Any]]:
    """200 when the feedback database answers; the knowledge base is reported, not required.

    The schema was checked at startup; here one cheap query proves the database is reachable.
    """
    figures: dict[str, Any] = {"ok": True}
    try:
        figures["active_version"] = deps.loop.active_version_number()
        figures["database"] = "ok"
    except Exception as exc:
        figures.update(ok=False, database=f"{exc.__class__.__name__}: {str(exc)[:200]}")
    try:
        figures["chunks"] = deps.services.store.count()
    except Exception as exc:
        figures["chunks"] = None
        figures["knowledge_base"] = f"{exc.__class__.__name__}: {str(exc)[:200]}"
    return (200 if figures["ok"] else 503), figures


class SlackASGI:
    """Routes `/healthz` here and everything else to bolt's ASGI handler."""

    def __init__(self, app: AsyncApp, deps: BotDeps, path: str = EVENTS_PATH) -> None:
        self.app = app
        self.deps = deps
        self.bolt = AsyncSlackRequestHandler(app, path=path)
        self._watcher: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "http" and scope.get("path") == "/healthz":
            status, figures = await asyncio.to_thread(health, self.deps)
            body = json.dumps(figures).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.bolt(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.deps.settings.review_channel and self.deps.settings.slack_review_poll > 0:
                    self._watcher = asyncio.create_task(watch_review_queue(self.deps, self.app.client))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._watcher:
                    self._watcher.cancel()
                await send({"type": "lifespan.shutdown.complete"})
                return


def asgi_app(app: AsyncApp, deps: BotDeps) -> Any:
    """The ASGI app to serve, with the operations layer's /metrics and request ids when present."""
    routed = SlackASGI(app, deps)
    try:
        from bot.observability import instrument
    except ImportError:  # pragma: no cover - the operations layer is optional
        return routed
    try:
        return instrument(routed, store_factory=lambda: deps.loop,
                          threshold=deps.settings.answer_threshold)
    except Exception as exc:
        log.warning("metrics are unavailable (%s: %s); serving without them",
                    exc.__class__.__name__, str(exc).splitlines()[0] if str(exc) else "")
        return routed
