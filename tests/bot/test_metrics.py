"""/metrics scraped over HTTP from the edge app: the loop's events move the counters, requests
are timed with a bounded label set, 5xx and logged errors are counted, and the database-backed
gauges follow what the read callable returns — omitted (never faked) when it fails or stalls,
without holding the scrape or the event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from bot import observability
from bot.slack.server import EdgeLimits, MetricsEndpoint, edge_middleware
from tests.support.chroma_server import free_port
from tests.support.ops import metric_value, scrape


class Figures:
    """What the feedback layer would read from the database; a test can break or stall it."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {"pending_reviews": 1, "pending_corrections": 1,
                                         "pending_proposals": 0, "satisfaction_rate": 2 / 3,
                                         "drift_low_score_share": 0.5, "questions_today": 2,
                                         "active_tuning_version": 0}
        self.broken = False
        self.stall = threading.Event()
        self.reads = 0

    def __call__(self) -> Mapping[str, float]:
        self.reads += 1
        if self.broken:
            raise ConnectionError("connection to server at 10.0.0.7, port 5432 failed")
        if self.stall.is_set():
            time.sleep(5)
        return dict(self.values)


def edge_app(gauges: observability.FeedbackGauges) -> Starlette:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("boom")

    return Starlette(routes=[Route("/ok", ok), Route("/boom", boom),
                             Route("/metrics", MetricsEndpoint(gauges.refresh))],
                     middleware=edge_middleware(EdgeLimits()))


@pytest.fixture()
def served() -> Iterator[tuple[str, Figures, observability.FeedbackGauges]]:
    figures = Figures()
    gauges = observability.register_feedback_gauges(figures, ttl=0, deadline=0.5)
    observability.count_logged_errors()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(edge_app(gauges), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", figures, gauges
    finally:
        figures.stall.clear()
        server.should_exit = True
        thread.join(5)


def test_loop_events_move_the_counters(served):
    base, _, _ = served
    events = observability.MetricEvents()
    before = scrape(base + "/metrics")
    events.answered("slack_mention", abstained=False)
    events.answered("slack_mention", abstained=True)
    events.voted("up", True, "slack_reaction")
    events.voted("up", False, "slack_reaction")
    events.voted("down", True, "slack_button")
    events.voted("removed", None, "slack_reaction")
    events.corrected("slack_modal")
    events.retrieved(0.02, failed=False)
    events.retrieved(0.5, failed=True)
    after = scrape(base + "/metrics")

    def moved(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert moved("askloop_answers_total", origin="slack_mention") == 2
    assert moved("askloop_abstentions_total", origin="slack_mention") == 1
    assert moved("askloop_votes_total", kind="up", counted="true", source="slack_reaction") == 1
    assert moved("askloop_votes_total", kind="up", counted="false") == 1
    assert moved("askloop_votes_total", kind="down", counted="true", source="slack_button") == 1
    assert moved("askloop_votes_total", kind="removed", counted="n/a") == 1
    assert moved("askloop_corrections_total") == 1
    assert moved("askloop_retrieval_duration_seconds_count") == 2
    assert moved("askloop_errors_total", where="retrieval") == 1


def test_metric_events_is_the_loops_event_interface():
    from feedback.events import LoopEvents

    events: LoopEvents = observability.MetricEvents()  # checked by mypy; and every hook exists:
    for hook in ("answered", "retrieved", "voted", "corrected"):
        assert callable(getattr(events, hook))


def test_requests_are_timed_and_errors_counted_with_bounded_labels(served):
    base, _, _ = served
    before = scrape(base + "/metrics")
    for _ in range(3):
        scrape(base + "/ok")
    with pytest.raises(Exception):
        scrape(base + "/boom")
    with pytest.raises(Exception):
        scrape(base + "/no/such/path/" + "x" * 50)
    after = scrape(base + "/metrics")
    assert metric_value(after, "askloop_request_duration_seconds_count", method="GET", path="other",
                        status="200") - metric_value(before, "askloop_request_duration_seconds_count",
                                                     method="GET", path="other", status="200") == 3
    assert metric_value(after, "askloop_errors_total", where="http") - metric_value(
        before, "askloop_errors_total", where="http") == 1  # the 500; a 404 is not our error
    assert 'path="/boom"' not in after and "no/such" not in after


def test_gauges_are_read_at_scrape_time(served):
    base, figures, _ = served
    text = scrape(base + "/metrics")
    assert metric_value(text, "askloop_pending_reviews") == 1
    assert metric_value(text, "askloop_satisfaction_rate") == pytest.approx(2 / 3)
    assert metric_value(text, "askloop_drift_low_score_share") == pytest.approx(0.5)
    figures.values["pending_reviews"] = 4
    del figures.values["satisfaction_rate"]  # no votes in the window: no rate, not a fake 0
    text = scrape(base + "/metrics")
    assert metric_value(text, "askloop_pending_reviews") == 4
    assert "askloop_satisfaction_rate" not in text


def test_gauges_are_omitted_not_faked_when_the_database_is_down(served, caplog):
    base, figures, _ = served
    errors0 = observability.ERRORS.labels(where="metrics")._value.get()
    figures.broken = True
    text = scrape(base + "/metrics")
    assert "askloop_pending_reviews" not in text and "askloop_answers_total" in text
    assert observability.ERRORS.labels(where="metrics")._value.get() == errors0 + 1
    figures.broken = False
    assert metric_value(scrape(base + "/metrics"), "askloop_pending_reviews") == 1


def test_a_stalled_database_does_not_hold_the_scrape_or_other_requests(served):
    base, figures, _ = served
    figures.stall.set()
    timings = {}

    def timed(name: str, url: str) -> None:
        start = time.monotonic()
        scrape(url)
        timings[name] = time.monotonic() - start

    scraper = threading.Thread(target=timed, args=("metrics", base + "/metrics"))
    scraper.start()
    time.sleep(0.1)
    timed("ok", base + "/ok")  # served while the scrape waits for the database
    scraper.join(10)
    assert timings["ok"] < 0.3, timings
    assert timings["metrics"] < 2.0, timings
    reads = figures.reads
    timed("again", base + "/metrics")  # the stuck read is not started a second time
    assert figures.reads == reads


def test_errors_logged_by_components_are_counted(served):
    base, _, _ = served
    before = metric_value(scrape(base + "/metrics"), "askloop_errors_total", where="askloop.slack")
    logging.getLogger("askloop.slack").error("answering failed (channel=C1)")
    logging.getLogger("askloop.slack").warning("only a warning")
    logging.getLogger("other.library").error("not ours")
    after = scrape(base + "/metrics")
    assert metric_value(after, "askloop_errors_total", where="askloop.slack") - before == 1
    assert 'where="other.library"' not in after
