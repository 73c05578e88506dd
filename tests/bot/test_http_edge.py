"""The HTTP edge of a real `askloop serve --http`, attacked before authentication.

One bot process (SQLite, the tiny corpus, logs at DEBUG in the text format) serves the module.
What must hold for anyone who can reach the port without the signing secret:
- bodies over the limit are refused with 413 before they are buffered (Content-Length or
  chunked), so four concurrent 100 MB posts leave the process's memory where it was;
- junk (bad JSON, bad headers, invalid UTF-8, a JSON array, stale timestamps) is answered
  400/401 without a traceback and without moving `askloop_errors_total`;
- nothing they send can forge a log line, and no body is logged in full, even at DEBUG;
- `/healthz` says "ok" or "degraded" and nothing about hosts, ports or exceptions.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import TINY_CORPUS
from tests.support.ops import metric_value
from tests.support.slack_stub import SlackStub
from tests.support.slack import BotProcess, SlackClient, prepare_home, reaction, sign, unique

pytestmark = pytest.mark.slow

MB = 1024 * 1024


@pytest.fixture(scope="module")
def stub() -> Iterator[SlackStub]:
    server = SlackStub().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, embedder: Any, stub: SlackStub) -> Iterator[BotProcess]:
    root = tmp_path_factory.mktemp("http-edge")
    corpus = root / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps(d) for d in TINY_CORPUS) + "\n")
    home = root / "home"
    prepare_home(home, corpus, embedder)
    process = BotProcess(home, stub, env={"ASKLOOP_LOG_LEVEL": "DEBUG", "ASKLOOP_LOG_FORMAT": "text",
                                          "ASKLOOP_SLACK_REVIEW_POLL": "0"}).start()
    yield process
    process.stop()


def errors_total(bot: BotProcess) -> float:
    return metric_value(httpx.get(bot.url + "/metrics", timeout=5).text, "askloop_errors_total")


def post(bot: BotProcess, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(bot.url + "/slack/events", content=body, headers=headers, timeout=10)


def junk_requests() -> list[tuple[str, bytes, dict[str, str], int]]:
    """(what, body, headers, expected status): 401 before authentication, 400 after it."""
    json_type = {"Content-Type": "application/json"}
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    array = b'[{"type": "event_callback"}]'
    bad_utf8 = b'{"type": "event_callback", "text": "\xff\xfe\xc3"}'
    now = int(time.time())
    return [
        ("malformed JSON, unsigned", b'{"type": ', json_type, 401),
        ("malformed JSON, signed", b'{"type": ', json_type | sign(b'{"type": '), 400),
        ("non-numeric timestamp", b"{}", json_type | {"X-Slack-Request-Timestamp": "soon",
                                                       "X-Slack-Signature": "v0=00"}, 401),
        ("invalid UTF-8, unsigned", bad_utf8, json_type, 401),
        ("invalid UTF-8, signed", bad_utf8, json_type | sign(bad_utf8), 400),
        ("top-level JSON array, unsigned", array, json_type, 401),
        ("top-level JSON array, signed", array, json_type | sign(array), 400),
        ("missing headers", b'{"type": "event_callback"}', json_type, 401),
        ("stale timestamp, signed", b"{}", json_type | sign(b"{}", timestamp=now - 600), 401),
        ("timestamp from the future, signed", b"{}", json_type | sign(b"{}", timestamp=now + 600), 401),
        ("wrong signature", b"{}", json_type | {"X-Slack-Request-Timestamp": str(now),
                                                 "X-Slack-Signature": "v0=" + "0" * 64}, 401),
        ("form payload that is not JSON, signed", b"payload=%7Bnot-json",
         form_type | sign(b"payload=%7Bnot-json"), 400),
        ("form payload that is an array, signed", b"payload=%5B1%2C2%5D",
         form_type | sign(b"payload=%5B1%2C2%5D"), 400),
    ]


def test_junk_before_authentication_is_answered_quietly(bot):
    before_errors = errors_total(bot)
    log_before = len(bot.log())
    statuses = {}
    for what, body, headers, _expected in junk_requests():
        statuses[what] = post(bot, body, headers).status_code
    assert statuses == {what: expected for what, _b, _h, expected in junk_requests()}
    time.sleep(0.3)  # let the last access lines reach the log
    written = bot.log()[log_before:]
    assert "Traceback" not in written and "Exception in ASGI" not in written
    assert errors_total(bot) == before_errors


def test_a_signed_request_still_reaches_bolt(bot):
    """The guard lets Slack through: a signed url_verification is answered by bolt."""
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "t"}).encode()
    response = post(bot, body, {"Content-Type": "application/json"} | sign(body))
    assert response.status_code == 200 and response.json() == {"challenge": "c-123"}


def test_oversized_bodies_are_refused(bot):
    big = b"x" * (2 * MB)
    declared = post(bot, big, {"Content-Type": "application/json"})
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(4):
            yield b"y" * (512 * 1024)

    chunked = httpx.post(bot.url + "/slack/events", content=chunks(),
                         headers={"Content-Type": "application/json"}, timeout=10)
    assert chunked.status_code == 413
    # Within the limit, a signed body is served as usual.
    slack = SlackClient(bot.url)
    response, _ = slack.event({"type": "app_home_opened", "user": unique("U"), "tab": "messages"})
    assert response.status_code == 200


def _flood(url: str, size: int, chunked: bool, results: list[Any]) -> None:
    piece = b"z" * MB

    def body() -> Iterator[bytes]:
        for _ in range(size // MB):
            yield piece

    headers = {"Content-Type": "application/json"}
    if not chunked:
        headers["Content-Length"] = str(size)
    try:
        response = httpx.post(url, content=body(), headers=headers, timeout=60)
        results.append(response.status_code)
    except httpx.HTTPError as exc:  # the server may close the connection after its 413
        results.append(type(exc).__name__)


def test_four_concurrent_100mb_posts_do_not_grow_the_process(bot):
    process = psutil.Process(bot.process.pid)
    before = process.memory_info().rss
    peak = before
    results: list[Any] = []
    for chunked in (False, True):
        threads = [threading.Thread(target=_flood, args=(bot.url + "/slack/events", 100 * MB, chunked, results))
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.02)
        for thread in threads:
            thread.join()
    grown = (peak - before) / MB
    print(f"resident memory: {before / MB:.0f} MB before, {peak / MB:.0f} MB at the peak")
    assert grown < 64, f"the process grew by {grown:.0f} MB under four 100 MB posts"
    assert all(r in (413, "RemoteProtocolError", "WriteError", "ReadError") for r in results), results
    assert httpx.get(bot.url + "/healthz", timeout=5).status_code == 200


def test_nothing_unauthenticated_can_forge_a_log_line(bot):
    forged = "2030-01-01 00:00:00,000 ERROR   askloop.slack: forged by a stranger"
    form = {"command": "/askloop", "text": "hi", "trigger_id": "t1\n" + forged + "\r\x1b[2J"}
    from urllib.parse import urlencode

    body = urlencode(form).encode()
    log_before = len(bot.log())
    response = post(bot, body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 401
    time.sleep(0.3)
    written = bot.log()[log_before:]
    assert not any(line.startswith("2030-01-01") for line in written.splitlines())
    assert "\x1b" not in written


def test_bodies_are_never_logged_in_full_even_at_debug(bot):
    marker = "Q" * (600 * 1024)
    body = json.dumps({"type": "event_callback", "event_id": "EvBig", "pad": marker}).encode()
    log_before = len(bot.log())
    assert post(bot, body, {"Content-Type": "application/json"}).status_code == 401
    # Signed and handled: bolt logs what it processes at DEBUG; no line may carry the whole body.
    event = reaction("thumbsup", user=unique("U"), channel=unique("C"), ts="1.000001") | {"pad": marker}
    signed, _ = SlackClient(bot.url).event(event)
    assert signed.status_code == 200
    time.sleep(0.5)
    written = bot.log()[log_before:]
    longest = max((len(line) for line in written.splitlines()), default=0)
    assert longest < 20_000, f"a log line of {longest} characters"


def test_healthz_says_only_ok_or_degraded(bot):
    response = httpx.get(bot.url + "/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert not re.search(r"127\.0\.0\.1|sqlite|Error|chunks", response.text)
