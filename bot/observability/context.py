"""The request id and the Slack event id that every log line of a request carries.

They live in context variables, so background tasks started while handling a request (bolt's
lazy listeners, the answer posted after Slack's ack) inherit them without being passed anything.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "askloop_request_id", default=None
)
event_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "askloop_event_id", default=None
)

# What a proxy may hand us as X-Request-Id; anything else (newlines, 10 kB, escapes) is replaced
# by an id of our own, so a client cannot put arbitrary text into every line of its request.
_ACCEPTED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_ACCEPTED_EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def accepted_request_id(value: str | None) -> str:
    """The proxy's request id when it is a plain token, else a new one."""
    if value and _ACCEPTED_REQUEST_ID.fullmatch(value):
        return value
    return new_request_id()


@contextmanager
def request_context(request_id: str | None = None, event_id: str | None = None) -> Iterator[str]:
    """Bind a request id (and the Slack event id, when known) to everything logged inside.

    The event id is reset on the way out even when it was bound later (`bind_event_id`), so
    nothing leaks from one request into the next one served by the same task.
    """
    rid = request_id or new_request_id()
    rid_token = request_id_var.set(rid)
    eid_token = event_id_var.set(event_id)
    try:
        yield rid
    finally:
        event_id_var.reset(eid_token)
        request_id_var.reset(rid_token)


def bind_event_id(event_id: object) -> None:
    """Attach a Slack event id to the current context (it is known once the body is verified).

    Only plain ids are kept: the value comes from a request body, and log lines must not carry
    text a sender chose.
    """
    if isinstance(event_id, str) and _ACCEPTED_EVENT_ID.fullmatch(event_id):
        event_id_var.set(event_id)
