"""Helpers for the Slack end-to-end tests and benchmark: signed requests, the bot as a process.

Requests are signed exactly as Slack signs them (v0 HMAC-SHA256 of "v0:{ts}:{body}" with the
signing secret), so they pass bolt's real verification; the bot is `askloop serve --http`
started as a separate process, talking to the Web API stand-in in tests/slack_stub.py.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.support.slack_stub import BOT_USER_ID, TEAM_ID, SlackStub, new_trigger_id

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-test-token"
REPO = Path(__file__).resolve().parents[2]
ASKLOOP = REPO / ".venv" / "bin" / "askloop"
if not ASKLOOP.exists():  # running from another environment
    ASKLOOP = Path(sys.executable).with_name("askloop")

_ids = itertools.count(1)


def unique(prefix: str) -> str:
    """A fresh id (channel, user, event) so tests sharing one bot never see each other's data."""
    return f"{prefix}{os.getpid():x}{next(_ids):05d}".upper()


def sign(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlackClient:
    """Sends what Slack would send to the bot's /slack/events endpoint."""

    def __init__(self, base_url: str, secret: str = SIGNING_SECRET) -> None:
        self.url = base_url.rstrip("/") + "/slack/events"
        self.secret = secret
        self.http = httpx.Client(timeout=10)

    def post(self, body: bytes, content_type: str, headers: dict[str, str] | None = None,
             signed: bool = True, timestamp: int | None = None) -> httpx.Response:
        all_headers = {"Content-Type": content_type}
        if signed:
            all_headers |= sign(body, self.secret, timestamp)
        all_headers |= headers or {}
        return self.http.post(self.url, content=body, headers=all_headers)

    def event(self, event: dict[str, Any], *, event_id: str | None = None,
              retry: int | None = None, **kwargs: Any) -> tuple[httpx.Response, str]:
        event_id = event_id or unique("Ev")
        payload = {
            "token": "legacy", "team_id": TEAM_ID, "api_app_id": "A1", "type": "event_callback",
            "event_id": event_id, "event_time": int(time.time()), "event": event,
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
        }
        headers = {}
        if retry:
            headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        body = json.dumps(payload).encode()
        return self.post(body, "application/json", headers=headers, **kwargs), event_id

    def interactive(self, payload: dict[str, Any], **kwargs: Any) -> httpx.Response:
        payload = {"team": {"id": TEAM_ID}, "api_app_id": "A1", "token": "legacy"} | payload
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.post(body, "application/x-www-form-urlencoded", **kwargs)

    def command(self, text: str, *, user: str, channel: str, response_url: str,
                **kwargs: Any) -> httpx.Response:
        form = {"token": "legacy", "team_id": TEAM_ID, "channel_id": channel, "user_id": user,
                "user_name": user.lower(), "command": "/askloop", "text": text,
                "response_url": response_url, "trigger_id": new_trigger_id(), "api_app_id": "A1"}
        return self.post(urlencode(form).encode(), "application/x-www-form-urlencoded", **kwargs)


# -- payload builders ---------------------------------------------------------------------------


def mention(text: str, *, user: str, channel: str, ts: str | None = None, **extra: Any) -> dict[str, Any]:
    ts = ts or f"{time.time():.6f}"
    return {"type": "app_mention", "user": user, "text": f"<@{BOT_USER_ID}> {text}", "ts": ts,
            "channel": channel, "event_ts": ts, **extra}


def message(text: str, *, user: str, channel: str, channel_type: str = "channel",
            thread_ts: str | None = None, **extra: Any) -> dict[str, Any]:
    ts = f"{time.time():.6f}"
    event = {"type": "message", "user": user, "text": text, "ts": ts, "channel": channel,
             "channel_type": channel_type, "event_ts": ts, **extra}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def reaction(name: str, *, user: str, channel: str, ts: str, added: bool = True) -> dict[str, Any]:
    now = f"{time.time():.6f}"
    return {"type": "reaction_added" if added else "reaction_removed", "user": user,
            "reaction": name, "item_user": BOT_USER_ID,
            "item": {"type": "message", "channel": channel, "ts": ts}, "event_ts": now}


def block_action(action: dict[str, Any], *, user: str, channel: str | None, message_ts: str | None,
                 message: dict[str, Any] | None = None, response_url: str | None = None,
                 container: dict[str, Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions", "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
        "trigger_id": new_trigger_id(), "actions": [action | {"action_ts": f"{time.time():.6f}"}],
        "container": container or {"type": "message", "message_ts": message_ts, "channel_id": channel,
                                   "is_ephemeral": False},
    }
    if channel:
        payload["channel"] = {"id": channel, "name": "test"}
    if message is not None:
        payload["message"] = message
    if response_url:
        payload["response_url"] = response_url
    return payload


def view_submission(callback_id: str, private_metadata: str, values: dict[str, Any], *,
                    user: str, view_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "view_submission", "user": {"id": user, "team_id": TEAM_ID},
        "trigger_id": new_trigger_id(),
        "view": {"id": view_id or unique("V"), "type": "modal", "callback_id": callback_id,
                 "private_metadata": private_metadata, "state": {"values": values}},
    }


def find_action(blocks: list[dict[str, Any]], action_id: str) -> dict[str, Any]:
    """The element with `action_id` in a message's blocks (buttons, feedback buttons)."""
    for block in blocks:
        for element in block.get("elements", []) + ([block["accessory"]] if "accessory" in block else []):
            if element.get("action_id") == action_id:
                return element
    raise AssertionError(f"no {action_id} in {json.dumps(blocks)[:500]}")


# -- the bot as a process -----------------------------------------------------------------------


class BotProcess:
    def __init__(self, home: Path, stub: SlackStub, *, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home.parent / f"bot-{self.port}.log"
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("ASKLOOP_", "SLACK_"))}
        self.env = base | {
            "ASKLOOP_HOME": str(home), "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": stub.url,
            "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False", "TOKENIZERS_PARALLELISM": "false",
            "ASKLOOP_SLACK_REVIEW_POLL": "0.3",
        } | (env or {})
        self.cwd = home.parent
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self, http: bool = True) -> "BotProcess":
        """Start `askloop serve` without waiting (several bots can boot at once)."""
        self._log = open(self.log_path, "wb")
        args = [str(ASKLOOP), "serve"]
        if http:
            args += ["--http", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(args, env=self.env, cwd=self.cwd, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        return self

    def start(self, timeout: float = 180) -> "BotProcess":
        if self.process is None:
            self.launch()
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"askloop serve exited: {self.log()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code in (200, 503):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"askloop serve did not come up: {self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if getattr(self, "_log", None):
            self._log.close()


def prepare_home(home: Path, corpus: Path, embedder: Any, extra_env: dict[str, str] | None = None) -> None:
    """Ingest `corpus` and create the feedback schema in `home` (in this process)."""
    from bot.services import Services
    from bot.settings import Settings
    from feedback.store import FeedbackStore

    settings = Settings(home=home, **{k: v for k, v in (extra_env or {}).items()})
    services = Services(settings)
    services.__dict__["embedder"] = embedder
    services.ingestor.run([corpus])
    store = FeedbackStore(settings.effective_database_url)
    store.upgrade()
    store.close()


def wait_until(check: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def iter_texts(blocks: list[dict[str, Any]]) -> Iterator[str]:
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            yield text.get("text", "")
        for element in block.get("elements", []):
            if isinstance(element, dict) and element.get("type") in {"mrkdwn", "plain_text"}:
                yield element.get("text", "")


class TcpProxy:
    """A TCP relay to a server (PostgreSQL) that a test can cut, to take the database "down"."""

    def __init__(self, host: str, port: int) -> None:
        import threading

        self.target = (host, port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while self.open:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.open = False
        self.server.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
