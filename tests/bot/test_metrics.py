"""/metrics scraped over HTTP from an instrumented ASGI app: the counters move when answers,
votes and corrections happen, latencies are observed, database gauges follow the store.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import parse_qs

import pytest
import uvicorn

from bot import observability
from tests.support.chroma_server import free_port
from tests.support.ops import metric_value, scrape


def make_app(loop):
    """A minimal ASGI app taking the same path as the bot: answer, record, vote — through the loop."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        query = parse_qs(scope.get("query_string", b"").decode())
        status, body = 200, {}
        if scope["path"] == "/ask":
            answered = loop.answer(query["q"][0], asker="UASK", origin="slack")
            body = {"id": answered.answer_id, "abstained": answered.answer.abstained}
        elif scope["path"] == "/vote":
            loop.vote(int(query["id"][0]), query["user"][0], int(query["value"][0]), source="slack")
        elif scope["path"] == "/unvote":
            body = {"removed": loop.withdraw_vote(int(query["id"][0]), query["user"][0], source="slack").changed}
        elif scope["path"] == "/correct":
            loop.suggest_correction(int(query["id"][0]), "UFIX", text="Better: use the IT portal.")
        elif scope["path"] == "/boom":
            raise RuntimeError("boom")
        else:
            status = 404
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return app


@pytest.fixture()
def served(tiny_services, settings):
    from bot.services import Services

    loop = Services(settings, events=observability.MetricEvents()).loop
    store = loop.store
    app = observability.instrument(make_app(loop), store_factory=lambda: loop, threshold=settings.answer_threshold,
                                   gauge_ttl=0)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    try:
        yield base, store
    finally:
        server.should_exit = True
        thread.join(5)
        store.close()


def get(url: str) -> dict:
    return json.loads(scrape(url) or "{}")


def test_metrics_move_with_answers_votes_and_corrections(served):
    base, store = served
    before = scrape(base + "/metrics")
    answers0 = metric_value(before, "askloop_answers_total", origin="slack")
    abst0 = metric_value(before, "askloop_abstentions_total", origin="slack")
    up0 = metric_value(before, "askloop_votes_total", kind="up", counted="true")
    down0 = metric_value(before, "askloop_votes_total", kind="down", counted="true")
    corr0 = metric_value(before, "askloop_corrections_total")
    lat0 = metric_value(before, "askloop_request_duration_seconds_count", method="GET", path="other", status="200")
    ret0 = metric_value(before, "askloop_retrieval_duration_seconds_count")

    good = get(base + "/ask?q=how+do+I+connect+to+the+VPN")
    bad = get(base + "/ask?q=" + "zzqx+" * 5 + "quantum+banana+orbit")
    assert not good["abstained"] and bad["abstained"]
    get(base + f"/vote?id={good['id']}&user=U1&value=1")
    get(base + f"/vote?id={good['id']}&user=U2&value=1")
    get(base + f"/vote?id={bad['id']}&user=U1&value=-1")
    get(base + f"/correct?id={bad['id']}")
    removed0 = metric_value(before, "askloop_votes_total", kind="removed", counted="n/a")
    assert get(base + f"/unvote?id={good['id']}&user=U2")["removed"] is True
    assert get(base + f"/unvote?id={good['id']}&user=U2")["removed"] is False  # nothing to remove
    get(base + f"/vote?id={good['id']}&user=U2&value=1")

    after = scrape(base + "/metrics")
    assert metric_value(after, "askloop_answers_total", origin="slack") - answers0 == 2
    assert metric_value(after, "askloop_abstentions_total", origin="slack") - abst0 == 1
    assert metric_value(after, "askloop_votes_total", kind="up", counted="true") - up0 == 3
    assert metric_value(after, "askloop_votes_total", kind="removed", counted="n/a") - removed0 == 1
    assert metric_value(after, "askloop_votes_total", kind="up", source="slack") - metric_value(
        before, "askloop_votes_total", kind="up", source="slack") == 3
    assert metric_value(after, "askloop_votes_total", kind="down", counted="true") - down0 == 1
    assert metric_value(after, "askloop_corrections_total") - corr0 == 1
    assert metric_value(after, "askloop_request_duration_seconds_count",
                        method="GET", path="other", status="200") - lat0 == 9
    assert metric_value(after, "askloop_retrieval_duration_seconds_count") - ret0 == 2

    # Read from the database: every replica reports the same figures.
    assert metric_value(after, "askloop_pending_reviews") == 1
    assert metric_value(after, "askloop_pending_corrections") == 1
    assert metric_value(after, "askloop_satisfaction_rate") == pytest.approx(2 / 3)
    assert metric_value(after, "askloop_drift_low_score_share") == pytest.approx(0.5)
    assert metric_value(after, "askloop_questions_today") == 2


def test_errors_are_counted_and_a_rolled_back_write_counts_nothing(served):
    base, store = served
    before = scrape(base + "/metrics")
    with pytest.raises(Exception):
        scrape(base + "/boom")
    with pytest.raises(Exception):  # unknown answer: the store refuses, nothing is recorded
        scrape(base + "/vote?id=999999&user=U1&value=1")
    after = scrape(base + "/metrics")
    assert metric_value(after, "askloop_errors_total", where="http") - metric_value(
        before, "askloop_errors_total", where="http") == 2
    for kind in ("up", "down"):
        assert metric_value(after, "askloop_votes_total", kind=kind, counted="true") == metric_value(
            before, "askloop_votes_total", kind=kind, counted="true")
    # Unknown paths share one label, so scanners cannot create unbounded series.
    assert 'path="/boom"' not in after


def test_gauges_are_omitted_not_faked_when_the_database_is_down(tiny_services):
    class Broken:
        def gauges(self, window_days):
            raise ConnectionError("database down")

    collector = observability.FeedbackCollector(lambda: Broken(), threshold=0.35, ttl=0)
    errors0 = observability.ERRORS.labels(where="metrics")._value.get()
    assert list(collector.collect()) == []
    assert observability.ERRORS.labels(where="metrics")._value.get() == errors0 + 1


def test_instrumenting_does_not_connect_to_chroma(monkeypatch, home, embedder):
    """A replica must start, and serve /metrics, while the Chroma server is still down."""
    import asyncio

    from bot.services import Services
    from bot.settings import load_settings
    from retrieval.store import StoreUnavailable

    monkeypatch.setenv("ASKLOOP_CHROMA_URL", f"http://127.0.0.1:{free_port()}")  # nobody listens
    services = Services(load_settings(), events=observability.MetricEvents())

    async def app(scope, receive, send):  # pragma: no cover - never reached
        raise AssertionError

    wrapped = observability.instrument(app, store_factory=lambda: services.loop, threshold=0.35)
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(wrapped({"type": "http", "method": "GET", "path": "/metrics", "headers": []},
                        receive, send))
    assert sent[0]["status"] == 200
    errors0 = observability.ERRORS.labels(where="retrieval")._value.get()
    with pytest.raises(StoreUnavailable):
        services.loop.answer("vpn?", asker="U1", origin="test")
    assert observability.ERRORS.labels(where="retrieval")._value.get() == errors0 + 1


def test_errors_logged_by_components_are_counted(served):
    import logging

    base, _ = served
    before = metric_value(scrape(base + "/metrics"), "askloop_errors_total", where="askloop.slack")
    logging.getLogger("askloop.slack").error("answering failed (channel=C1)")
    logging.getLogger("askloop.slack").warning("only a warning")
    logging.getLogger("other.library").error("not ours")
    after = scrape(base + "/metrics")
    assert metric_value(after, "askloop_errors_total", where="askloop.slack") - before == 1
    assert 'where="other.library"' not in after


def test_bad_questions_are_not_retrieval_errors(settings, tiny_services):
    from bot.services import Services
    from retrieval.search import QuestionError

    loop = Services(settings, events=observability.MetricEvents()).loop
    errors0 = observability.ERRORS.labels(where="retrieval")._value.get()
    with pytest.raises(QuestionError):
        loop.answer("   ", asker="U1", origin="test")
    assert observability.ERRORS.labels(where="retrieval")._value.get() == errors0
