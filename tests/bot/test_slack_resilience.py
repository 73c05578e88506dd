"""When things break: Chroma down, the database down, and the Socket Mode transport.

Two `askloop serve` processes boot at once against one Web API stand-in:
- SLACK_APP_TOKEN set and Chroma unreachable: `askloop serve` opens a Socket Mode connection
  with the app token, acknowledges an event that arrives over the websocket, and the user sees
  👀 on the question then an apology while the error is logged;
- HTTP mode with PostgreSQL behind a relay we cut mid-run: a normal answer first, then an
  apology.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.commands.serve import choose_transport
from bot.settings import Settings
from tests.conftest import PG_URL, TINY_CORPUS, postgres_available
from tests.support.slack_stub import BOT_USER_ID, TEAM_ID, SlackStub
from tests.support.slack import (
    BotProcess,
    SlackClient,
    TcpProxy,
    free_port,
    mention,
    prepare_home,
    unique,
    wait_until,
)

pytestmark = pytest.mark.slow

APP_TOKEN = "xapp-1-A1-test"
PG_DATABASE = "askloop_slack_resilience"


@pytest.fixture(scope="module")
def stub() -> Iterator[SlackStub]:
    server = SlackStub().start()
    yield server
    server.stop()


def fresh_postgres_database() -> str:
    import psycopg

    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DATABASE}")
    return PG_URL.rsplit("/", 1)[0] + "/" + PG_DATABASE


@pytest.fixture(scope="module")
def bots(tmp_path_factory: pytest.TempPathFactory, embedder: Any, stub: SlackStub) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("slack-resilience")
    corpus = root / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps(d) for d in TINY_CORPUS) + "\n")
    started: dict[str, Any] = {}

    socket_home = root / "socket-chroma-down" / "home"
    prepare_home(socket_home, corpus, embedder)
    started["socket"] = BotProcess(socket_home, stub, env={
        "SLACK_APP_TOKEN": APP_TOKEN, "ASKLOOP_SLACK_LOOKING_AFTER": "0",
        "ASKLOOP_CHROMA_URL": f"http://127.0.0.1:{free_port()}",
    }).launch(http=False)

    started["postgres_skip"] = postgres_available()
    if not started["postgres_skip"]:
        url = fresh_postgres_database()
        from urllib.parse import urlparse

        target = urlparse(url.replace("postgresql+psycopg", "postgresql"))
        proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
        proxied = url.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}")
        db_home = root / "db-down" / "home"
        prepare_home(db_home, corpus, embedder, {"database_url": proxied})
        started["proxy"] = proxy
        started["db"] = BotProcess(db_home, stub, env={
            "ASKLOOP_DATABASE_URL": proxied, "ASKLOOP_SLACK_LOOKING_AFTER": "0",
        }).launch()
    try:
        if "db" in started:
            started["db"].start()
        yield started
    finally:
        for name in ("socket", "db"):
            if name in started:
                started[name].stop()
        if "proxy" in started:
            started["proxy"].close()


def no_traceback_in_slack(stub: SlackStub) -> None:
    for call in stub.calls:
        assert "Traceback" not in call.blob() and 'File "' not in call.blob()


def test_transport_choice():
    assert choose_transport(Settings(slack_app_token=APP_TOKEN), http=False) == "socket"
    assert choose_transport(Settings(slack_app_token=APP_TOKEN), http=True) == "http"
    assert choose_transport(Settings(slack_app_token=None), http=False) == "http"


def test_database_down_gives_apology_and_logs(bots, stub):
    if bots["postgres_skip"]:
        pytest.skip(bots["postgres_skip"])
    bot = bots["db"]
    slack = SlackClient(bot.url)
    channel = unique("C")
    event = mention("how do I submit expenses?", user=unique("U"), channel=channel)
    slack.event(event)
    # 👀 on the question while it is answered (no "looking…" message for an extractive answer)
    (answer,) = stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel)
    assert "finance tool" in answer.blob()
    (eyes,) = stub.wait_for("reactions.remove", lambda c: c.get("channel") == channel)
    assert (eyes["timestamp"], eyes["name"]) == (event["ts"], "eyes")
    assert stub.find("reactions.add", lambda c: c.get("channel") == channel and c.get("timestamp") == event["ts"])
    bots["proxy"].close()  # the database goes away
    first, channel = channel, unique("C")
    event = mention("how do I request holidays?", user=unique("U"), channel=channel)
    response, _ = slack.event(event)
    assert response.status_code == 200  # still acknowledged at once
    apology = stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel and
                            "Sorry" in c.get("text", ""), timeout=30)[0]
    assert apology["thread_ts"] == event["ts"]
    wait_until(lambda: "OperationalError" in bot.log())
    # an answer already given stays as it is
    assert not stub.find("chat.update", lambda c: c.get("channel") == first and "Sorry" in c["text"])
    no_traceback_in_slack(stub)


def test_socket_mode_with_chroma_down_acks_and_apologises(bots, stub):
    bot = bots["socket"]
    try:
        (opened,) = stub.wait_for("apps.connections.open", timeout=180)
        stub.wait_for("socket.connect", timeout=30)
    except AssertionError:
        raise AssertionError(bot.log()[-3000:])
    assert opened.token == APP_TOKEN  # the app-level token opens the socket
    time.sleep(0.5)  # the client is listening once it has said hello
    channel = unique("C")
    event = mention("how do I deploy to production?", user=unique("U"), channel=channel)
    envelope_id = unique("env")
    stub.push_socket_event({
        "envelope_id": envelope_id, "type": "events_api", "accepts_response_payload": False,
        "retry_attempt": 0, "retry_reason": "",
        "payload": {"token": "legacy", "team_id": TEAM_ID, "api_app_id": "A1",
                    "type": "event_callback", "event_id": unique("Ev"), "event_time": int(time.time()),
                    "event": event,
                    "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}]},
    })
    stub.wait_for("socket.ack", lambda c: c.get("envelope_id") == envelope_id, timeout=30)
    (eyes,) = stub.wait_for("reactions.add", lambda c: c.get("channel") == channel, timeout=30)
    assert eyes["timestamp"] == event["ts"] and eyes.token == "xoxb-test-token"  # the bot token
    (apology,) = stub.wait_for("chat.postMessage", lambda c: c.get("channel") == channel, timeout=30)
    assert apology["thread_ts"] == event["ts"]
    assert "Sorry" in apology["text"] and "Chroma" not in apology["text"]
    stub.wait_for("reactions.remove", lambda c: c.get("channel") == channel, timeout=30)
    wait_until(lambda: "answering failed" in bot.log())
    assert "StoreUnavailable" in bot.log()
    no_traceback_in_slack(stub)
