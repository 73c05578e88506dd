"""ASGI middleware that observes each HTTP request: its id, its latency, one access line.

Pure ASGI (not Starlette's BaseHTTPMiddleware), so the handler runs in the same task and the
context variables set here (request id; the event id bound later by the Slack guard) are seen
by everything the handler logs and by the tasks it starts, and are visible again here when
the access line is written.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.observability.context import accepted_request_id, request_context
from bot.observability.metrics import REQUEST_LATENCY, count_error

log = logging.getLogger("askloop.observability")
access = logging.getLogger("askloop.access")


class RequestObservation:
    """Request id in and out (`X-Request-Id`), latency histogram, 5xx counted, access line.

    `known_paths` bounds the `path` label: anything else is "other", so scanners cannot grow
    the number of series. `quiet_paths` (health checks) log their access line at DEBUG only.
    """

    def __init__(self, app: ASGIApp, *, known_paths: tuple[str, ...] = (),
                 quiet_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.known_paths = known_paths
        self.quiet_paths = quiet_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "")
        proxied = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"x-request-id"), None)
        status = 500  # what the server answers if the handler raises before responding

        with request_context(accepted_request_id(proxied)) as rid:
            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message = dict(message)
                    message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
                await send(message)

            start = time.perf_counter()
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                status = 500
                log.warning("unhandled error serving %s", path, exc_info=True)  # counted below
                raise
            finally:
                self._observe(method, path, status, time.perf_counter() - start)

    def _observe(self, method: str, path: str, status: int, elapsed: float) -> None:
        label = path if path in self.known_paths else "other"
        REQUEST_LATENCY.labels(method=method, path=label, status=str(status)).observe(elapsed)
        if status >= 500:
            count_error("http")
        # One access line per request: with the ids bound, it ties Slack's event to everything
        # logged while handling it.
        extra: dict[str, Any] = {"method": method, "path": label, "status": status,
                                 "duration_ms": round(elapsed * 1000, 1)}
        access.log(logging.DEBUG if path in self.quiet_paths else logging.INFO,
                   "%s %s %s %.1f ms", method, label, status, elapsed * 1000, extra=extra)
