"""PostgreSQL cut and stalled behind a fault proxy: every wait is bounded, /healthz answers
within 2 s and says only "ok"/"degraded", and everything recovers when the database returns.

Each test gets a scratch database of its own and a `FaultProxy` in front of the shared server;
the engine under test connects through the proxy with small limits so the test stays short.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot.observability.health import HealthCheck
from bot.slack.server import build_asgi
from feedback import db
from feedback.db import EngineOptions, make_engine
from tests.support.chroma_server import free_port
from tests.support.faults import FaultProxy
from tests.support.ops import scratch_database

pytestmark = pytest.mark.postgres

SMALL = EngineOptions(connect_timeout=2, statement_timeout=1.0, reply_grace=1.0, pool_timeout=1.0,
                      keepalive_idle=5, keepalive_interval=2, keepalive_count=2)


@pytest.fixture()
def database(postgres_url: str) -> Iterator[tuple[str, FaultProxy]]:
    with scratch_database(postgres_url) as url:
        proxy = FaultProxy.for_url(url)
        try:
            yield url, proxy
        finally:
            proxy.close()


@pytest.fixture()
def engine(database: tuple[str, FaultProxy]) -> Iterator[Engine]:
    url, proxy = database
    engine = make_engine(proxy.route(url), SMALL, pool_size=2, max_overflow=0)
    try:
        yield engine
    finally:
        engine.dispose()


def select_one(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT 1")).scalar_one())


def outcome_within(fn: Callable[[], Any], limit: float) -> tuple[Any, BaseException | None, float]:
    """Run `fn` on a thread; (result, error, seconds). Fails the test instead of hanging."""
    box: dict[str, Any] = {}

    def run() -> None:
        start = time.monotonic()
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc
        box["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"the call was still waiting after {limit} s"
    return box.get("result"), box.get("error"), box["seconds"]


def test_the_engine_sets_the_server_and_tcp_limits(engine):
    with engine.connect() as connection:
        assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "1s"
        params = connection.connection.driver_connection.info.get_parameters()
        assert params.get("keepalives_idle") == "5" and params.get("connect_timeout") == "2"
        assert params.get("tcp_user_timeout") == "2000"
    start = time.monotonic()
    with pytest.raises(OperationalError, match="statement timeout"):
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_sleep(5)"))
    assert time.monotonic() - start < 3
    assert select_one(engine) == 1  # the pool is fine afterwards


def test_a_stalled_database_fails_calls_instead_of_hanging_them(engine, database):
    _, proxy = database
    assert select_one(engine) == 1  # a pooled connection, as a running bot has
    proxy.stall()
    _, error, seconds = outcome_within(lambda: select_one(engine), 20)
    assert isinstance(error, OperationalError), error
    # pre-ping waits one reply deadline (2 s), then a new connection one connect timeout (2 s)
    assert seconds < 8, seconds
    # a fresh engine (a replica starting now) cannot connect either, and says so in time
    fresh = make_engine(database[1].route(database[0]), SMALL)
    try:
        _, error, seconds = outcome_within(lambda: select_one(fresh), 20)
        assert isinstance(error, OperationalError) and seconds < 5, (error, seconds)
    finally:
        fresh.dispose()
    proxy.passing()
    assert outcome_within(lambda: select_one(engine), 20)[0] == 1


def test_a_query_already_waiting_when_the_database_stalls_gives_up(engine, database):
    _, proxy = database
    started = threading.Event()

    def slow_query() -> int:
        with engine.connect() as connection:
            started.set()
            time.sleep(0.2)  # the stall begins while this connection is checked out
            return int(connection.execute(text("SELECT 1")).scalar_one())

    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(zip(("r", "e", "s"), outcome_within(slow_query, 20))))
    thread.start()
    started.wait(5)
    proxy.stall()
    thread.join(25)
    assert isinstance(result["e"], OperationalError) and "did not reply" in str(result["e"])
    assert result["s"] < 0.2 + SMALL.reply_deadline + 1.5
    proxy.passing()
    assert select_one(engine) == 1  # the closed connection was discarded, not reused


def test_the_pool_checkout_is_bounded(database):
    url, proxy = database
    engine = make_engine(proxy.route(url), SMALL, pool_size=1, max_overflow=0)
    try:
        with engine.connect():
            _, error, seconds = outcome_within(lambda: select_one(engine), 10)
        assert isinstance(error, PoolTimeout) and seconds < SMALL.pool_timeout + 1
    finally:
        engine.dispose()


def test_calls_fail_fast_during_a_cut_and_reconnect_after_it(engine, database):
    _, proxy = database
    assert select_one(engine) == 1
    proxy.cut()
    for _ in range(3):
        _, error, seconds = outcome_within(lambda: select_one(engine), 20)
        assert isinstance(error, OperationalError) and seconds < 3, (error, seconds)
    proxy.passing()
    assert outcome_within(lambda: select_one(engine), 20)[0] == 1


def test_migrations_are_not_cut_short_and_the_limits_come_back(database):
    url, proxy = database
    engine = make_engine(proxy.route(url), SMALL, pool_size=1, max_overflow=0)
    try:
        db.upgrade(engine)
        assert db.current_revision(engine) == db.head_revision()
        with engine.connect() as connection:  # the same pooled connection, limits restored
            assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "1s"
            assert connection.connection.driver_connection.reply_deadline == SMALL.reply_deadline
    finally:
        engine.dispose()


# -- /healthz -----------------------------------------------------------------------------------


@pytest.fixture()
def healthz(database: tuple[str, FaultProxy]) -> Iterator[tuple[str, FaultProxy]]:
    """The edge app with a database check over the proxy, using the product's default limits:
    /healthz must be bounded by its own deadline, not by the database's."""
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.authorization import AuthorizeResult

    url, proxy = database
    engine = make_engine(proxy.route(url))

    async def authorize(**_: object) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="xoxb-t", bot_user_id="U", bot_id="B")

    app = build_asgi(AsyncApp(signing_secret="s" * 32, authorize=authorize), signing_secret="s" * 32,
                     health=[HealthCheck("database", lambda: select_one(engine))])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/healthz", proxy
    finally:
        proxy.passing()
        server.should_exit = True
        thread.join(5)
        engine.dispose()


def probe(url: str) -> tuple[int, dict[str, Any], float, str]:
    start = time.monotonic()
    response = httpx.get(url, timeout=10)
    return response.status_code, response.json(), time.monotonic() - start, response.text


def test_healthz_answers_within_2s_while_the_database_is_stalled_or_cut(healthz, caplog):
    url, proxy = healthz
    assert probe(url)[:2] == (200, {"status": "ok"})
    caplog.set_level(logging.DEBUG, logger="askloop.health")
    threads_before = threading.active_count()
    for fault in (proxy.stall, proxy.cut):
        fault()
        for _ in range(4):
            status, body, seconds, raw = probe(url)
            assert (status, body) == (503, {"status": "degraded"}) and seconds < 2.0, (status, body, seconds)
            assert "5432" not in raw and "127.0.0.1" not in raw and "Error" not in raw
    # repeated probes against a stalled database did not pile up threads
    assert threading.active_count() <= threads_before + 2
    assert any("database" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    proxy.passing()
    deadline = time.monotonic() + 30
    while probe(url)[:2] != (200, {"status": "ok"}):
        assert time.monotonic() < deadline, "health did not come back after the database did"
        time.sleep(0.2)


def test_engine_options_come_from_the_settings(home, monkeypatch):
    from bot.settings import load_settings

    monkeypatch.setenv("ASKLOOP_DB_STATEMENT_TIMEOUT", "7.5")
    monkeypatch.setenv("ASKLOOP_DB_CONNECT_TIMEOUT", "3")
    monkeypatch.setenv("ASKLOOP_DB_POOL_TIMEOUT", "2")
    monkeypatch.setenv("ASKLOOP_DB_KEEPALIVE_IDLE", "11")
    monkeypatch.setenv("ASKLOOP_DB_BUSY_TIMEOUT", "4")
    options = load_settings().engine_options()
    assert (options.statement_timeout, options.connect_timeout, options.pool_timeout,
            options.keepalive_idle, options.sqlite_busy_timeout) == (7.5, 3, 2, 11, 4)


def test_sqlite_keeps_its_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'f.db'}", EngineOptions(sqlite_busy_timeout=0.25))
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA busy_timeout")).scalar_one() == 250
    finally:
        engine.dispose()
