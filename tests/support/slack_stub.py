"""A stand-in for Slack's Web API on 127.0.0.1, for end-to-end tests and benchmarks.

It runs an aiohttp server in a thread, records every call (method, parameters, token, time),
answers the methods the bot uses the way Slack does, and serves response_url posts and a
Socket Mode websocket. It knows nothing of askloop: it only imitates Slack.

It is as strict as Slack: every `blocks` and `view` it receives is validated
(tests/slack_blockkit.py), and a payload Slack would refuse is refused the same way
(`invalid_blocks` with `[ERROR] ... [json-pointer:/blocks/N/...]` messages, `msg_too_long`,
`msg_blocks_too_long`, `invalid_arguments`, `no_text`, `message_not_found`, ...). Trigger ids
made by `new_trigger_id` expire after 3 seconds and work once, as Slack's do. Every refusal is
recorded; those that are the payload's fault (`invalid_payloads`) make `stop()` fail, so a test
fails whenever the bot sends something Slack would reject.

A test can make it answer 429 with Retry-After (`rate_limit`), refuse the native feedback block
(`reject_native_feedback`), act as if the bot were not in a channel (`not_in_channel`) or a
channel did not exist (`missing_channels`), or lower the total size it accepts (`blocks_budget`).

It is longer than most modules because it is one imitation of one API (methods, refusals,
response_url, Socket Mode); the Block Kit rules themselves are in tests/slack_blockkit.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import WSMsgType, web

from tests.support.slack_blockkit import (
    BLOCKS_BUDGET,
    MESSAGE_TEXT_LIMIT,
    check_blocks,
    check_view,
    size,
    tables,
)

BOT_USER_ID = "UBOT0001"
BOT_ID = "BBOT0001"
TEAM_ID = "T0000001"
TRIGGER_TTL = 3.0  # seconds a trigger_id can open a modal
_TRIGGER = re.compile(r"^(\d+)\.\d+\.[0-9a-f]+$")
_triggers = itertools.count(1)
Problem = tuple[str, list[str], bool]  # Slack's error, its messages, whether the payload is excused


def new_trigger_id(issued: float | None = None) -> str:
    """A trigger_id as Slack puts in an interaction payload; the stand-in reads from it when it
    was issued (`issued`: a time.time() value, now by default)."""
    at = time.time() if issued is None else issued
    return f"{int(at * 1000)}.{next(_triggers)}.{secrets.token_hex(8)}"


@dataclass
class Rejection:
    """A call the stand-in refused. `excused`: not the payload's fault: a test setting asked
    for it (e.g. `not_in_channel`), or the test made up state Slack would have (a button on a
    message that was never posted); otherwise the payload was wrong, as Slack would have said."""

    method: str
    error: str
    messages: list[str]
    params: dict[str, Any]
    excused: bool = False

    def __str__(self) -> str:
        shown = json.dumps(self.params, ensure_ascii=False)[:600]
        return f"{self.method}: {self.error} {self.messages[:5]} in {shown}"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)

    def __getitem__(self, name: str) -> Any:
        return self.params[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    def blob(self) -> str:
        """Everything the call would show in Slack, as one string (for escaping checks)."""
        return json.dumps(self.params, ensure_ascii=False)


class SlackStub:
    def __init__(self, *, strict: bool = True) -> None:
        self.calls: list[Call] = []
        self.usergroups: dict[str, list[str]] = {}
        self.reject_native_feedback = False
        self.not_in_channel: set[str] = set()
        self.missing_channels: set[str] = set()
        self.blocks_budget = BLOCKS_BUDGET
        self.rejections: list[Rejection] = []
        self.strict = strict  # stop() fails when the bot sent a payload Slack would refuse
        self._used_triggers: set[str] = set()
        self._rate_limits: dict[str, list[tuple[float, Callable[[dict[str, Any]], bool]]]] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._ts = itertools.count(1)
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.socket_events: asyncio.Queue[dict[str, Any]] | None = None
        self.socket_acks: list[dict[str, Any]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- control --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/response/{name}"

    def rate_limit(self, method: str, times: int = 1, retry_after: float = 1,
                   where: Callable[[dict[str, Any]], bool] = lambda params: True) -> None:
        """The next `times` calls of `method` (matching `where`) get HTTP 429 with Retry-After."""
        with self._lock:
            self._rate_limits.setdefault(method, []).extend([(retry_after, where)] * times)

    @property
    def invalid_payloads(self) -> list[Rejection]:
        """Refusals that are the payload's fault: payloads Slack would have refused too."""
        with self._lock:
            return [r for r in self.rejections if not r.excused]

    def assert_valid(self) -> None:
        """AssertionError listing every payload Slack would have refused."""
        invalid = self.invalid_payloads
        if invalid:
            raise AssertionError(f"{len(invalid)} payload(s) Slack would refuse:\n"
                                 + "\n".join(str(r) for r in invalid[:10]))

    def find(self, method: str, where: Callable[[Call], bool] = lambda c: True) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and where(c)]

    def wait_for(self, method: str, where: Callable[[Call], bool] = lambda c: True,
                 timeout: float = 30.0, count: int = 1) -> list[Call]:
        """The first `count` matching calls, waiting for them; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [c for c in self.calls if c.method == method and where(c)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({c.method for c in self.calls})
                    raise AssertionError(f"no {count}x {method} matching within {timeout}s; seen {seen}")
                self._changed.wait(left)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> SlackStub:
        ready = threading.Event()

        def serve() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.socket_events = asyncio.Queue()
            app = web.Application(client_max_size=10 * 2**20)
            app.router.add_post("/api/{method}", self._api)
            app.router.add_get("/api/{method}", self._api)
            app.router.add_post("/response/{name}", self._response_url)
            app.router.add_get("/socket", self._socket)
            self._runner = web.AppRunner(app, access_log=None)
            self.loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=serve, name="slack-stub", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self.loop is None:
            return

        async def shutdown() -> None:
            if self._runner:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread:
            self._thread.join(10)
        self.loop = None
        if self.strict:
            self.assert_valid()

    # -- the Web API ----------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        body = await request.read()
        if body:
            if request.content_type == "application/json":
                params.update(json.loads(body))
            else:
                for key, values in parse_qs(body.decode(), keep_blank_values=True).items():
                    params[key] = values[-1]
        for key in ("blocks", "view", "attachments"):
            if isinstance(params.get(key), str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    pass
        return params

    def _record(self, call: Call) -> None:
        with self._changed:
            self.calls.append(call)
            self._changed.notify_all()

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") or params.get("token")
        retry_after = None
        with self._lock:
            waits = self._rate_limits.get(method) or []
            for i, (seconds, where) in enumerate(waits):
                if where(params):
                    retry_after = seconds
                    del waits[i]
                    break
        if retry_after is not None:
            self._record(Call(method + ":429", params, token))
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(int(retry_after))})
        if not token:
            self._record(Call(method, params, token))
            return web.json_response({"ok": False, "error": "not_authed"})
        refusals = len(self.rejections)
        answer = self._answer(method, params)
        # a refused call is recorded as "method:error", so find(method) sees what Slack accepted
        refused = len(self.rejections) > refusals
        self._record(Call(f"{method}:{answer['error']}" if refused else method, params, token))
        return web.json_response(answer)

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://stub.slack.test/", "team": "Stub", "user": "askloop",
                    "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID}
        if method == "chat.getPermalink":
            channel, ts = params.get("channel", ""), str(params.get("message_ts", ""))
            return {"ok": True, "channel": channel,
                    "permalink": f"https://stub.slack.test/archives/{channel}/p{ts.replace('.', '')}"}
        if method in {"chat.postMessage", "chat.update", "chat.postEphemeral"}:
            return self._refusal(method, params, self._message_problem(method, params)) \
                or self._chat(method, params)
        if method in {"views.open", "views.push", "views.update", "views.publish"}:
            return self._refusal(method, params, self._view_problem(method, params)) \
                or {"ok": True, "view": {"id": f"V{next(self._ts):08d}", **(params.get("view") or {})}}
        if method == "users.info":
            user = params.get("user", "")
            return {"ok": True, "user": {"id": user, "name": user.lower(), "is_bot": user == BOT_USER_ID}}
        if method == "usergroups.users.list":
            group = params.get("usergroup", "")
            if group not in self.usergroups:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": self.usergroups[group]}
        if method == "conversations.replies":
            refused = self._refusal(method, params, self._channel_problem(params))
            if refused:
                return refused
            channel, ts = params.get("channel", ""), str(params.get("ts", ""))
            with self._lock:
                replies = [m for (c, _), m in self.messages.items()
                           if c == channel and m.get("thread_ts") == ts]
            return {"ok": True, "messages": replies, "has_more": False}
        if method == "apps.connections.open":
            return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}
        return {"ok": True}

    def _chat(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel", "")
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        ts = params.get("ts") if method == "chat.update" else self._next_ts()
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": ts,
                   "text": params.get("text", ""), "blocks": params.get("blocks") or []}
        with self._lock:
            previous = self.messages.get((channel, str(ts)), {})
            if params.get("thread_ts") or previous.get("thread_ts"):
                message["thread_ts"] = params.get("thread_ts") or previous["thread_ts"]
            self.messages[(channel, str(ts))] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    # -- Slack's refusals --------------------------------------------------------------------------

    def _refusal(self, method: str, params: dict[str, Any],
                 problem: Problem | None) -> dict[str, Any] | None:
        """Slack's error answer for `problem` (recorded), or None when there is none."""
        if problem is None:
            return None
        error, messages, excused = problem
        with self._lock:
            self.rejections.append(Rejection(method, error, messages, params, excused))
        answer: dict[str, Any] = {"ok": False, "error": error}
        if messages:
            answer["errors"] = messages
            answer["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in messages]}
        return answer

    def _channel_problem(self, params: dict[str, Any]) -> Problem | None:
        channel = params.get("channel")
        if not channel:
            return "channel_not_found", [], False
        if channel in self.missing_channels:
            return "channel_not_found", [], True
        if channel in self.not_in_channel:
            return "not_in_channel", [], True
        return None

    def _blocks_problem(self, blocks: Any) -> Problem | None:
        if blocks is None or blocks == []:
            return None
        if not isinstance(blocks, list):
            return "invalid_blocks_format", [], False
        if self.reject_native_feedback:
            refused = [f"unsupported type: context_actions [json-pointer:/blocks/{i}/type]"
                       for i, b in enumerate(blocks)
                       if isinstance(b, dict) and b.get("type") == "context_actions"]
            if refused:
                return "invalid_blocks", refused, True
        problems = check_blocks(blocks)
        if problems:
            return "invalid_blocks", problems, False
        if tables(blocks) > 1:
            return "invalid_attachments", ["only_one_table_allowed"], False
        if size(blocks) > self.blocks_budget:
            return "msg_blocks_too_long", [], self.blocks_budget < BLOCKS_BUDGET
        return None

    def _message_problem(self, method: str, params: dict[str, Any]) -> Problem | None:
        problem = self._channel_problem(params)
        if problem:
            return problem
        blocks, text = params.get("blocks"), params.get("text")
        if method == "chat.update":
            if not params.get("ts"):
                return "invalid_arguments", ["missing required field: ts"], False
            with self._lock:
                known = (params["channel"], str(params["ts"])) in self.messages
            if not known:
                return "message_not_found", [], True  # the message may come from a test's payload
        if method == "chat.postEphemeral" and not params.get("user"):
            return "user_not_found", [], False
        if not text and not blocks and not params.get("attachments"):
            return "no_text", [], False
        if isinstance(text, str) and len(text) > MESSAGE_TEXT_LIMIT:
            return "msg_too_long", [], False
        return self._blocks_problem(blocks)

    def _trigger_problem(self, trigger_id: Any) -> Problem | None:
        if not trigger_id:
            return "invalid_arguments", ["missing required field: trigger_id"], False
        match = _TRIGGER.match(str(trigger_id))
        if not match:
            return "invalid_trigger_id", [], False
        if time.time() - int(match.group(1)) / 1000 > TRIGGER_TTL:
            return "expired_trigger_id", [], False
        with self._lock:
            if trigger_id in self._used_triggers:
                return "exchanged_trigger_id", [], False
            self._used_triggers.add(trigger_id)
        return None

    def _view_problem(self, method: str, params: dict[str, Any]) -> Problem | None:
        if method in {"views.open", "views.push"}:
            problem = self._trigger_problem(params.get("trigger_id"))
            if problem:
                return problem
        if method == "views.update" and not (params.get("view_id") or params.get("external_id")):
            return "invalid_arguments", ["missing required field: view_id"], False
        if method == "views.publish" and not params.get("user_id"):
            return "invalid_arguments", ["missing required field: user_id"], False
        if "view" not in params:
            return "invalid_arguments", ["missing required field: view"], False
        kind = {"views.publish": "home", "views.update": None}.get(method, "modal")
        problems = check_view(params["view"], kind)
        return ("invalid_arguments", problems, False) if problems else None

    async def _response_url(self, request: web.Request) -> web.Response:
        """A response_url post: validated like a message; Slack answers 400 and the error name."""
        params = await self._params(request)
        text = params.get("text")
        problem: Problem | None = None
        if not text and not params.get("blocks") and not params.get("delete_original"):
            problem = "no_text", [], False
        elif isinstance(text, str) and len(text) > MESSAGE_TEXT_LIMIT:
            problem = "msg_too_long", [], False
        else:
            problem = self._blocks_problem(params.get("blocks"))
        refused = self._refusal("response_url", params, problem)
        name = "response_url" + (f":{refused['error']}" if refused else "")
        self._record(Call(name, params | {"_name": request.match_info["name"]}, None))
        if refused:
            return web.Response(status=400, text=refused["error"])
        return web.Response(text="ok")

    # -- Socket Mode ----------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._record(Call("socket.connect", {"headers": dict(request.headers)}, None))
        await ws.send_json({"type": "hello", "num_connections": 1,
                            "debug_info": {"host": "stub"}, "connection_info": {"app_id": "A1"}})

        async def push() -> None:
            assert self.socket_events is not None
            while not ws.closed:
                envelope = await self.socket_events.get()
                await ws.send_json(envelope)

        pusher = asyncio.ensure_future(push())
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    data = json.loads(message.data)
                    self.socket_acks.append(data)
                    self._record(Call("socket.ack", data, None))
        finally:
            pusher.cancel()
        return ws

    def push_socket_event(self, envelope: dict[str, Any]) -> None:
        assert self.loop is not None and self.socket_events is not None
        self.loop.call_soon_threadsafe(self.socket_events.put_nowait, envelope)
