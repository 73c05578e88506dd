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
    assert out.exit_code == 1 and "no document in the knowledge base matches 'no-such-doc'" in out.output
    out = runner.invoke(app, ["golden", "add", "How do I deploy on Fridays?", "Deploying to production", "-u", "mod"])
    assert out.exit_code == 0 and "→ deploy" in out.output  # a title names its document
    listed = json.loads(runner.invoke(app, ["golden", "list", "--json"]).stdout)
    assert [g["doc_ids"] for g in listed] == [["holidays"], ["deploy"]]

    loop = cli_home.loop
    answer_id = loop.answer("Which tool gets me onto the internal network?", asker="ann", origin="cli").answer_id
    loop.vote(answer_id, "ann", -1)
    fix = loop.suggest_correction(answer_id, "ann", source="Connecting to the VPN")  # by its title
    assert runner.invoke(app, ["review", "approve", fix.ref, "-u", "mod"]).exit_code == 0

    out = runner.invoke(app, ["learn", "-u", "mod", "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["status"] == "evaluated"
    assert result["evaluation"]["golden"]["count"] == 3  # the manual ones + the approved correction's
    assert "vpn" in result["summary"] and f"c{fix.id}" in result["summary"]
    assert loop.proposal(result["proposal"]).status == "evaluated"
    again = json.loads(runner.invoke(app, ["learn", "-u", "mod", "--json"]).stdout)
    assert again["proposal"] == result["proposal"] and again["new"] is False and "already holds" in again["reason"]
