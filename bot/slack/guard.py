"""What stands between the open port and bolt: a body limit, then Slack's signature.

Bolt parses a request before it verifies it (`AsyncBoltRequest` decodes, JSON-parses and
walks the body in its constructor; the signature is checked later, in a middleware). Junk from
anyone — bad JSON, invalid UTF-8, a JSON array, a non-numeric timestamp — therefore raised
inside bolt as a 500 with tracebacks, and a 100 MB body was held in memory several times over
(bytes, str, parsed) before being refused. So, in this order:

1. `BodyLimit` (ASGI middleware, every route) refuses a body over the limit with 413 before it
   is buffered: at once when Content-Length says so, else as soon as the streamed (chunked)
   body passes the limit. The response closes the connection, so nothing more is read.
2. `verify_slack_request` checks the headers and the HMAC signature on the raw bytes, before
   anything is decoded or parsed: missing or malformed headers, a stale timestamp or a wrong
   signature are 401.
3. Only then is the body decoded and parsed (by bolt's own Starlette adapter function); a signed
   body that bolt cannot read is 400.

Refusals are logged at DEBUG with their reason and never with the body; the access line
records the status.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("askloop.slack.guard")

# Slack refuses requests older than five minutes; so do we (replays of a captured request).
SIGNATURE_WINDOW = 5 * 60
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


class BodyTooLarge(Exception):
    """The request body passed the limit while it was being read."""


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, before they are buffered."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = [v for k, v in scope.get("headers", []) if k == b"content-length"]
        if declared:
            try:
                length = int(declared[0])
            except ValueError:
                length = -1
            if length < 0 or length > self.max_bytes:
                await self._refuse(send, 413 if length > self.max_bytes else 400)
                return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:  # the app answered before reading everything; nothing more to say
                return
            await self._refuse(send, 413)

    async def _refuse(self, send: Send, status: int) -> None:
        log.debug("refused a request body", extra={"status": status, "limit": self.max_bytes})
        body = b"request body too large\n" if status == 413 else b"bad request\n"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


def verify_slack_request(body: bytes, headers: Mapping[str, str], signing_secret: str,
                         now: Callable[[], float] = time.time) -> Refusal | None:
    """None when `body` is signed by Slack with `signing_secret` within the window, else why not.

    Only the headers and the raw bytes are looked at, so nothing a stranger sends is parsed.
    """
    timestamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if not timestamp or not signature:
        return Refusal(401, "no Slack signature headers")
    if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
        return Refusal(401, "malformed Slack signature headers")
    if abs(now() - int(timestamp)) > SIGNATURE_WINDOW:
        return Refusal(401, "stale or future Slack timestamp")
    # Slack's v0 scheme: HMAC-SHA256 of b"v0:{timestamp}:{body}". Computed on the bytes as
    # received (slack_sdk's SignatureVerifier decodes the body first, which raises on bytes
    # that are not UTF-8 before it has decided whether the sender knows the secret).
    expected = hmac.new(signing_secret.encode(), b"v0:" + timestamp.encode() + b":" + body,
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(f"v0={expected}", signature):
        return Refusal(401, "wrong Slack signature")
    return None
