"""Screens for people by default, JSON for machines: review, review show, versions, audit, the gate,
and scores shown as a bounded confidence."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.screens import change_summary, clip, evaluation_view
from retrieval.confidence import confidence, confidence_label
from tests.conftest import TINY_CORPUS

runner = CliRunner()
LONG_SUMMARY = ("3 piece(s) of validated feedback from 2 user(s): 2 document(s) raised, 1 lowered — each only for "
                "questions similar to the ones asked (similarity ≥ 0.45 for corrections, 0.65 for 👍, 0.70 for 👎).\n"
                "↑ vpn (+3.0; corrections c1) for questions like “how do I get on the VPN?”")


def cli(*args: str, ok: bool = True):
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "100"})
    if ok:
        assert result.exit_code == 0, f"{args}: {result.output}"
    return result


@pytest.fixture()
def seeded(tiny_services):
    """An answer, a correction with text and a source, and an applied proposal with a long summary."""
    loop = tiny_services.loop
    answered = loop.answer("how do I get on the VPN?", asker="ada", origin="cli")
    loop.vote(answered.answer_id, "ada", -1, reason="old client")
    correction = loop.suggest_correction(answered.answer_id, "ada", text="Use the WireGuard client.\nThen connect.",
                                         source="Connecting to the VPN")
    store = loop.store
    proposal = store.proposals.create(summary=LONG_SUMMARY, diff={"documents": []}, payload={"kind": "none"},
                                      created_by="learner")
    store.proposals.record_evaluation(proposal.id, {
        "passed": True, "tolerance": 0.05, "compared_with": "base index",
        "golden": {"count": 0, "before": {}, "after": {}, "better": 0, "worse": []},
        "recent": {"count": 4, "top_changed": 1, "top_changed_share": 0.25}}, True)
    store.proposals.approve(proposal.id, "mod")  # approved and applied: version 1
    return answered, correction, proposal


def test_review_and_review_show_are_for_people_and_json_for_machines(seeded) -> None:
    answered, correction, proposal = seeded
    listing = cli("review").stdout
    assert f"c{correction.id}" in listing and "┃" not in listing  # a list, not a squeezed table
    shown = cli("review", "show", f"c{correction.id}").stdout
    assert "question" in shown and "“how do I get on the VPN?”" in shown
    assert "Use the WireGuard client." in shown and "Then connect." in shown  # the text, as written
    assert "better source" in shown and "vpn" in shown
    assert "{" not in shown and "\\n" not in shown  # no raw JSON, no escaped newlines
    data = json.loads(cli("review", "show", f"c{correction.id}", "--json").stdout)
    assert data["text"] == "Use the WireGuard client.\nThen connect." and data["source_ref"] == "vpn"

    shown = cli("review", "show", f"p{proposal.id}").stdout
    assert "applied as version 1" in shown and "What it changes" in shown and "UNCHECKED" in shown
    assert "PASSED" not in shown  # no golden question: the gate could not judge, and says so
    assert json.loads(cli("review", "show", f"p{proposal.id}", "--json").stdout)["status"] == "applied"


def test_versions_show_one_line_of_each_summary(seeded) -> None:
    out = cli("versions").stdout
    lines = out.splitlines()
    assert lines[0].startswith("▶ version 1")
    assert lines[1].strip().startswith("3 piece(s) of validated feedback") and lines[1].rstrip().endswith("…")
    assert "↑ vpn" not in out  # the rest is in `askloop review show p1`
    data = json.loads(cli("versions", "--json").stdout)
    assert data[0]["number"] == 1 and data[0]["active"] is True and data[0]["note"] == LONG_SUMMARY


def test_audit_is_one_short_line_per_event(seeded) -> None:
    out = cli("audit").stdout
    assert "proposal.create" in out and "summary:" in out
    assert LONG_SUMMARY[:150] not in out and '{"passed"' not in out  # no whole payloads
    assert "status: evaluated → approved" in out
    rows = [json.loads(line) for line in cli("audit", "--json").stdout.splitlines()]
    created = next(r for r in rows if r["action"] == "proposal.create")
    assert created["after"]["summary"] == LONG_SUMMARY  # machines get everything


def test_change_summary_and_clip() -> None:
    assert change_summary({"status": "pending", "text": "a"}, {"status": "approved", "text": "a"}) == \
        "status: pending → approved"
    assert change_summary(None, {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}).endswith("+2 more")
    assert change_summary(None, {"payload": {str(i): i for i in range(40)}}) == "payload: {40 fields}"
    assert clip("one\ntwo") == "one…" and clip("x" * 200, 10) == "x" * 9 + "…" and clip(None) == ""


def test_the_gate_says_passed_failing_or_unchecked() -> None:
    from rich.console import Console

    def text(evaluation):
        console = Console(width=120, record=True, color_system=None)
        console.print(evaluation_view(evaluation))
        return console.export_text()

    golden = {"count": 2, "before": {"ndcg@10": 0.5, "hit@1": 0.5}, "after": {"ndcg@10": 0.75, "hit@1": 1.0},
              "better": 1, "worse": []}
    base = {"tolerance": 0.05, "compared_with": "base index", "recent": {"count": 3, "top_changed": 1}}
    assert "PASSED — 2 golden question(s): 1 better" in text(base | {"passed": True, "golden": golden})
    failing = golden | {"worse": [{"question": "vpn?", "before": 1.0, "after": 0.5}]}
    shown = text(base | {"passed": False, "golden": failing})
    assert "FAILING" in shown and "worse: “vpn?” nDCG@10 1.00 → 0.50" in shown
    assert "UNCHECKED" in text(base | {"passed": True, "golden": {"count": 0, "before": {}, "after": {}, "worse": []}})
    assert "not evaluated yet" in text(None)


def test_confidence_is_bounded_and_ordered() -> None:
    threshold = 0.35
    assert confidence(threshold, threshold) == pytest.approx(0.5)
    scores = [-1.0, 0.0, 0.3, 0.35, 0.5, 0.9, 1.34]  # cosines, and a score pushed past 1 by learning
    values = [confidence(s, threshold) for s in scores]
    assert all(a < b for a, b in zip(values, values[1:])) and all(0 < v < 1 for v in values)
    assert confidence(50.0, threshold) <= 1.0 and confidence(-50.0, threshold) >= 0.0
    assert confidence_label(1.34, threshold) == "99%" and confidence_label(-3, threshold) == "1%"
    assert confidence_label(0.45, threshold) == "73%"


def test_answers_show_confidence_not_raw_scores(tiny_services) -> None:
    out = cli("ask", "How do I request holidays?").stdout
    assert out.startswith(TINY_CORPUS[2]["text"][:30])
    assert "confidence" in out and "score" not in out
    data = json.loads(cli("ask", "--json", "How do I request holidays?").stdout)
    assert all(0 < s["confidence"] < 1 for s in data["sources"])
