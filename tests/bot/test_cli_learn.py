"""`askloop learn` and `askloop golden` from the command line, on a real data dir."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bot.cli import app


@pytest.fixture()
def cli_home(tiny_services, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ASKLOOP_MODERATORS", "mod")
    return tiny_services


def test_learn_without_feedback_says_so(cli_home) -> None:
    out = CliRunner().invoke(app, ["learn", "-u", "mod"])
    assert out.exit_code == 1 and "no validated feedback yet" in out.output


def test_golden_add_list_and_learn_with_the_gate(cli_home) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["golden", "add", "How do I request holidays?", "holidays", "-u", "mod"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["golden", "add", "Anything", "no-such-doc"])
    assert out.exit_code == 1 and "unknown document id" in out.output
    listed = json.loads(runner.invoke(app, ["golden", "list", "--json"]).stdout)
    assert [g["doc_ids"] for g in listed] == [["holidays"]]

    store = cli_home.feedback
    answer = cli_home.answer("Which tool gets me onto the internal network?", asker="ann")
    answer_id = answer.extras["answer_id"]
    store.vote(answer_id, "ann", -1)
    fix = store.suggest_correction(answer_id, "ann", source_ref="doc:vpn")
    from feedback.store import FeedbackStore

    moderated = FeedbackStore(store.url, moderators=["mod"])
    moderated.approve_correction(fix.id, "mod")
    moderated.close()

    out = runner.invoke(app, ["learn", "-u", "mod", "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["status"] == "evaluated"
    assert result["evaluation"]["golden"]["count"] == 2  # the manual one + the approved correction's
    assert "vpn" in result["summary"] and f"c{fix.id}" in result["summary"]
    assert store.get_proposal(result["proposal"]).status == "evaluated"
