"""The operator's commands: `askloop drift`, the drift line of `askloop stats`, `askloop worker --once`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bot.cli import app
from retrieval.types import Hit

runner = CliRunner()


def record(store, score: float | None) -> None:
    hits = [] if score is None else [Hit("vpn", "VPN", "vpn.md", score, "WireGuard.", "vpn#0", "", score)]
    store.answers.record(question=f"q{score}", asker="UA", origin="test", hits=hits, answer_text="-",
                        abstained=score is None or score < 0.35, tuning_version=None)


def test_drift_and_stats_show_the_share_below_the_threshold(services):
    store = services.feedback_store
    for score in (0.9, 0.8, 0.2, None):
        record(store, score)

    result = runner.invoke(app, ["drift", "--days", "3", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["threshold"] == 0.35 and len(data["days"]) == 3
    assert data["days"][-1] | {"day": None} == {"day": None, "questions": 4, "below_threshold": 2, "share": 0.5}

    table = runner.invoke(app, ["drift", "--days", "2", "--threshold", "0.85"])
    assert table.exit_code == 0 and "3 of 4 question(s) below the threshold (75%)" in table.stdout

    stats = runner.invoke(app, ["stats"])
    assert stats.exit_code == 0, stats.output
    assert "drift: today 50% of 4 question(s) scored below the answer threshold" in stats.stdout
    stats_json = json.loads(runner.invoke(app, ["stats", "--json"]).stdout)
    assert stats_json["drift"]["days"][-1]["below_threshold"] == 2


def test_drift_refuses_bad_input(services):
    result = runner.invoke(app, ["drift", "--days", "0"])
    assert result.exit_code != 0 and "greater than or equal to 1" in result.output


def test_worker_once_reports_what_it_did(services, tiny_corpus, monkeypatch):
    store = services.feedback_store
    record(store, 0.9)
    answer = store.answers.recent()[0]
    monkeypatch.setenv("ASKLOOP_LEARN_AFTER_VOTES", "1")
    assert runner.invoke(app, ["worker", "--once"]).stdout.startswith("not_due")
    store.votes.cast(answer.id, "UVOTER", +1, source="test")
    # The knowledge base is still empty: the gate cannot replay anything, the run fails loudly.
    failed = runner.invoke(app, ["worker", "--once"])
    assert failed.exit_code == 1 and "knowledge base is empty" in failed.output
    assert store.proposals.get(1).status == "pending"  # built, not yet measured

    services.ingestor.run([tiny_corpus])
    result = runner.invoke(app, ["worker", "--once", "--force"])
    assert result.exit_code == 0, result.output
    # The same feedback: the pending proposal is evaluated now, no second one is created.
    assert result.stdout.startswith("built") and "(proposal p1)" in result.stdout
    assert store.proposals.get(1).status in ("evaluated", "failing")
    assert len(store.proposals.find()) == 1
    assert runner.invoke(app, ["worker", "--once"]).stdout.startswith("not_due")
    assert runner.invoke(app, ["worker", "--once", "--force"]).stdout.startswith("nothing")
    assert runner.invoke(app, ["worker", "--force"]).exit_code != 0  # --force needs --once
