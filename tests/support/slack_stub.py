"""A stand-in for Slack's Web API on 127.0.0.1, for end-to-end tests and benchmarks.

It runs an aiohttp server in a thread, records every call (method, parameters, token, time),
answers the methods the bot uses the way Slack does, can be told to answer 429 with
Retry-After, to reject native feedback blocks or to act as if the bot were not in a channel
(`not_in_channel`), and serves response_url posts and a Socket Mode websocket. It knows
nothing of askloop: it only imitates Slack.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import WSMsgType, web

BOT_USER_ID = "UBOT0001"
BOT_ID = "BBOT0001"
TEAM_ID = "T0000001"


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
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.usergroups: dict[str, list[str]] = {}
        self.reject_native_feedback = False
        self.not_in_channel: set[str] = set()  # channels whose posts Slack refuses (bot not a member)
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

    def start(self) -> "SlackStub":
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
        answer = self._answer(method, params)
        # a post refused for the channel is recorded as "method:not_in_channel", so that
        # find(method) sees what Slack accepted
        refused = answer.get("error") == "not_in_channel"
        self._record(Call(f"{method}:not_in_channel" if refused else method, params, token))
        return web.json_response(answer)

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://stub.slack.test/", "team": "Stub", "user": "askloop",
                    "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID}
        if method in {"chat.postMessage", "chat.update", "chat.postEphemeral"} and \
                params.get("channel") in self.not_in_channel:
            return {"ok": False, "error": "not_in_channel"}
        if method == "chat.getPermalink":
            channel, ts = params.get("channel", ""), str(params.get("message_ts", ""))
            return {"ok": True, "channel": channel,
                    "permalink": f"https://stub.slack.test/archives/{channel}/p{ts.replace('.', '')}"}
        if method in {"chat.postMessage", "chat.update"}:
            blocks = params.get("blocks") or []
            if self.reject_native_feedback and any(b.get("type") == "context_actions" for b in blocks):
                return {"ok": False, "error": "invalid_blocks"}
            channel = params.get("channel", "")
            ts = params.get("ts") if method == "chat.update" else self._next_ts()
            message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": ts,
                       "text": params.get("text", ""), "blocks": blocks}
            if params.get("thread_ts"):
                message["thread_ts"] = params["thread_ts"]
            with self._lock:
                self.messages[(channel, str(ts))] = message
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method in {"views.open", "views.publish", "views.update", "views.push"}:
            return {"ok": True, "view": {"id": f"V{next(self._ts):08d}", **(params.get("view") or {})}}
        if method == "users.info":
            user = params.get("user", "")
            return {"ok": True, "user": {"id": user, "name": user.lower(), "is_bot": user == BOT_USER_ID}}
        if method == "usergroups.users.list":
            group = params.get("usergroup", "")
            if group not in self.usergroups:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": self.usergroups[group]}
        if method == "conversations.replies":
            channel, ts = params.get("channel", ""), str(params.get("ts", ""))
            with self._lock:
                replies = [m for (c, _), m in self.messages.items()
                           if c == channel and m.get("thread_ts") == ts]
            return {"ok": True, "messages": replies, "has_more": False}
        if method == "apps.connections.open":
            return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}
        return {"ok": True}

    async def _response_url(self, request: web.Request) -> web.Response:
        params = await self._params(request)
        self._record(Call("response_url", params | {"_name": request.match_info["name"]}, None))
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
