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


def test_instrumented_app_binds_the_slack_event_id_from_the_body(json_lines):
    seen = {}

    async def app(scope, receive, send):
        message = await receive()
        seen["body"] = message["body"]
        logging.getLogger("askloop.app").info("handling")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = observability.instrument(app)
    body = json.dumps({"type": "event_callback", "event_id": "Ev0ABC", "event": {}}).encode()
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/slack/events",
             "headers": [(b"content-type", b"application/json"), (b"x-request-id", b"proxy-rid")]}
    asyncio.run(wrapped(scope, receive, send))
    assert seen["body"] == body  # the app still reads the whole body
    line, accessed = json_lines()
    assert line["event_id"] == "Ev0ABC" and line["request_id"] == "proxy-rid"
    assert accessed["logger"] == "askloop.access" and accessed["event_id"] == "Ev0ABC"
    assert accessed["status"] == 200 and accessed["path"] == "/slack/events" and accessed["duration_ms"] >= 0
    assert (b"x-request-id", b"proxy-rid") in sent[0]["headers"]


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


def test_event_id_is_found_in_interactions_and_slash_commands():
    from urllib.parse import urlencode

    form = "application/x-www-form-urlencoded"
    action = urlencode({"payload": json.dumps({"type": "block_actions", "trigger_id": "trig-1"})}).encode()
    command = urlencode({"command": "/askloop", "text": "stats", "trigger_id": "trig-2"}).encode()
    assert observability._event_id_from(action, form) == "trig-1"
    assert observability._event_id_from(command, form) == "trig-2"
    assert observability._event_id_from(b"{}", "application/json") is None
    assert observability._event_id_from(b"payload=%7Bnot-json", form) is None


def test_uvicorn_colour_codes_stay_out_of_json(json_lines):
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 1,
                                            extra={"color_message": "\x1b[36m%d\x1b[0m"})
    (line,) = json_lines()
    assert "color_message" not in line and line["message"] == "Started server process [1]"
