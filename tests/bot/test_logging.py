"""Structured logs: every line is one JSON object carrying the request and Slack event ids."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from bot import observability


@pytest.fixture()
def json_lines():
    """Capture what the askloop JSON formatter writes, for the duration of a test."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(observability.make_formatter("json"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_json_lines_parse_and_carry_request_and_event_ids(json_lines):
    log = logging.getLogger("askloop.test")
    with observability.request_context("req-123", event_id="Ev42"):
        log.info("answered %s", "q", extra={"answer_id": 7})
    log.warning("outside any request")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        log.exception("failed")

    first, second, third = json_lines()
    assert first["message"] == "answered q"
    assert first["request_id"] == "req-123" and first["event_id"] == "Ev42"
    assert first["answer_id"] == 7 and first["level"] == "info" and first["logger"] == "askloop.test"
    assert "request_id" not in second and "event_id" not in second
    assert third["error"].startswith("ValueError: boom") and "Traceback" in third["traceback"]


def test_request_id_reaches_tasks_started_inside_the_request(json_lines):
    """Bolt's lazy listeners run in tasks created during the request: they inherit its ids."""

    async def main() -> None:
        with observability.request_context("req-async", event_id="EvLazy"):
            task = asyncio.get_running_loop().create_task(later())
        await task

    async def later() -> None:
        await asyncio.sleep(0)
        logging.getLogger("askloop.lazy").info("lazy listener ran")

    asyncio.run(main())
    (line,) = json_lines()
    assert line["request_id"] == "req-async" and line["event_id"] == "EvLazy"


def test_the_slack_event_id_is_bound_once_the_request_is_verified(json_lines):
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.authorization import AuthorizeResult
    from starlette.testclient import TestClient

    from bot.slack.server import build_asgi
    from tests.support.slack import SIGNING_SECRET, sign

    async def authorize(**_: object) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="xoxb-test",
                               bot_user_id="UBOT", bot_id="B1")

    bolt = AsyncApp(signing_secret=SIGNING_SECRET, authorize=authorize)

    @bolt.event("reaction_added")
    async def on_reaction() -> None:
        logging.getLogger("askloop.app").info("handling")

    event = {"type": "reaction_added", "user": "U1", "reaction": "thumbsup",
             "item": {"type": "message", "channel": "C1", "ts": "1.000001"}, "event_ts": "1.000002"}
    body = json.dumps({"type": "event_callback", "event_id": "Ev0ABC", "team_id": "T1",
                       "api_app_id": "A1", "event": event}).encode()
    with TestClient(build_asgi(bolt, signing_secret=SIGNING_SECRET)) as client:
        response = client.post("/slack/events", content=body, headers={
            "Content-Type": "application/json", "X-Request-Id": "proxy-rid"} | sign(body))
        # The same ids in a body nobody signed are not believed (and not logged).
        unsigned = client.post("/slack/events", content=body.replace(b"Ev0ABC", b"EvFAKE"),
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and unsigned.status_code == 401
    assert response.headers["x-request-id"] == "proxy-rid"
    lines = [line for line in json_lines() if line["logger"] in ("askloop.app", "askloop.access")]
    handled, accessed, refused = lines
    assert handled["event_id"] == "Ev0ABC" and handled["request_id"] == "proxy-rid"
    assert accessed["event_id"] == "Ev0ABC" and accessed["request_id"] == "proxy-rid"
    assert accessed["status"] == 200 and accessed["path"] == "/slack/events" and accessed["duration_ms"] >= 0
    assert refused["status"] == 401 and "event_id" not in refused and refused["request_id"] != "proxy-rid"


def test_log_format_setting_is_validated(monkeypatch, home):
    from pydantic import ValidationError

    from bot.settings import load_settings

    monkeypatch.setenv("ASKLOOP_LOG_FORMAT", "json")
    assert load_settings().log_format == "json"
    monkeypatch.setenv("ASKLOOP_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError):
        load_settings()
    with pytest.raises(ValueError, match="unknown log format"):
        observability.make_formatter("xml")


def test_text_format_shows_the_request_id():
    record = logging.LogRecord("askloop.x", logging.INFO, __file__, 1, "hello", None, None)
    formatter = observability.make_formatter("text")
    with observability.request_context("rid-9"):
        line = formatter.format(record)
    assert "hello" in line and "[req=rid-9]" in line


def test_event_id_is_found_in_events_interactions_and_slash_commands():
    from bot.slack.server import _event_id

    assert _event_id({"type": "event_callback", "event_id": "Ev1"}) == "Ev1"
    assert _event_id({"type": "block_actions", "trigger_id": "trig-1"}) == "trig-1"
    assert _event_id({"command": "/askloop", "text": "stats", "trigger_id": "trig-2"}) == "trig-2"
    assert _event_id({"type": "block_actions", "container": {"message_ts": "1.2"}}) == "1.2"
    assert _event_id({"container": "not a dict"}) is None


def test_only_plain_ids_are_bound(json_lines):
    log = logging.getLogger("askloop.test")
    with observability.request_context("rid-1"):
        observability.bind_event_id("trig\n2030-01-01 forged")
        log.info("a")
        observability.bind_event_id("Ev" + "x" * 500)
        log.info("b")
        observability.bind_event_id("Ev.ok-1")
        log.info("c")
    a, b, c = json_lines()
    assert "event_id" not in a and "event_id" not in b and c["event_id"] == "Ev.ok-1"


def test_a_proxy_request_id_is_kept_only_when_it_is_a_plain_token():
    from bot.observability.context import accepted_request_id

    assert accepted_request_id("89beca3073a145a1") == "89beca3073a145a1"
    for junk in ("rid\nforged", "x" * 65, "", None, "a b", "\x1b[2J"):
        replaced = accepted_request_id(junk)
        assert replaced != junk and len(replaced) == 16


FORGED = "2030-01-01 00:00:00,000 ERROR   askloop.slack: forged"


def test_text_lines_cannot_be_forged_or_repaint_the_terminal():
    formatter = observability.make_formatter("text")
    hostile = f"t1\n{FORGED}\r\x1b[2J\x07\u2028{FORGED}\u202eevil\x85"
    record = logging.LogRecord("askloop.x", logging.INFO, __file__, 1, "refused %s", (hostile,), None)
    with observability.request_context("rid-1"):
        observability.context.event_id_var.set(hostile)  # as if a value slipped past bind_event_id
        line = formatter.format(record)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\u2028" not in line
    assert "\u202e" not in line and "\x85" not in line and "\x07" not in line
    assert "t1\\n2030-01-01" in line and "\\x1b[2J" in line and "\\u202e" in line
    assert line.count("[event=") == 1


def test_text_tracebacks_stay_under_their_line():
    formatter = observability.make_formatter("text")
    try:
        raise ValueError(f"bad trigger\n{FORGED}")
    except ValueError:
        import sys

        record = logging.LogRecord("askloop.x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    first, *rest = formatter.format(record).split("\n")
    assert first.endswith("failed") and rest
    assert all(line.startswith("  | ") for line in rest)
    assert any(FORGED in line for line in rest)  # still readable, but never a line of its own


def test_json_lines_escape_separators_and_bound_every_field(json_lines):
    log = logging.getLogger("askloop.test")
    log.info("a\u2028b\u202ec", extra={"body": "B" * 100_000, "n": 3})
    log.info("M" * 100_000)
    first, second = json_lines()
    assert first["message"] == "a\u2028b\u202ec"  # round-trips exactly
    assert len(first["body"]) < 5000 and first["body"].endswith("more characters)") and first["n"] == 3
    assert len(second["message"]) < 5000


def test_json_output_has_no_raw_line_separators():
    formatter = observability.make_formatter("json")
    record = logging.LogRecord("askloop.x", logging.INFO, __file__, 1, "a\u2028b\u2029c\x85d", None, None)
    text = formatter.format(record)
    assert len(text.splitlines()) == 1 and "\\u2028" in text
    assert json.loads(text)["message"] == "a\u2028b\u2029c\x85d"


def test_uvicorn_colour_codes_stay_out_of_json(json_lines):
    # uvicorn passes its coloured copy as `color_message`; the logger name does not matter (and
    # uvicorn's own loggers are reconfigured by any server an earlier test started)
    logging.getLogger("askloop.uvicorn-like").info("Started server process [%d]", 1,
                                                   extra={"color_message": "\x1b[36m%d\x1b[0m"})
    (line,) = json_lines()
    assert "color_message" not in line and line["message"] == "Started server process [1]"
