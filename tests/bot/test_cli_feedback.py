"""The whole loop from the command line — answer → votes → correction → approve → proposal →
apply → rollback — on SQLite and PostgreSQL, plus the shell's feedback commands."""

from __future__ import annotations

import csv
import io
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bot.cli import app
from feedback.errors import FeedbackError
from feedback.store import FeedbackStore
from tests.support.feedback import BACKENDS, empty_postgres

runner = CliRunner()


@pytest.fixture(params=BACKENDS)
def cli_env(request, home, embedder, monkeypatch):
    """An empty data dir with moderator `mod`; the feedback database on either backend."""
    monkeypatch.setenv("ASKLOOP_MODERATORS", "mod")
    if request.param == "postgres":
        url = request.getfixturevalue("pg_migrated_url")
        empty_postgres(url)
        monkeypatch.setenv("ASKLOOP_DATABASE_URL", url)
    return request.param


def cli(*args: str, ok: bool = True):
    result = runner.invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, f"{args}: {result.output}"
    return result


def store_now() -> FeedbackStore:
    from bot.settings import load_settings

    return FeedbackStore(load_settings().effective_database_url)


def test_whole_lifecycle_from_the_cli(cli_env, tiny_corpus, tmp_path):
    assert "upgraded" in cli("db", "upgrade").output or cli_env == "postgres"
    cli("ingest", str(tiny_corpus))
    asked = json.loads(cli("ask", "how do I connect to the VPN?", "--json").output)
    answer_id = asked["answer_id"]
    assert asked["sources"][0]["doc_id"] == "vpn"

    # votes: one per user, a later one replaces, an unknown answer is refused
    cli("vote", str(answer_id), "+1", "--user", "alice")
    cli("vote", str(answer_id), "-1", "--user", "bob")
    assert "replaced" in cli("vote", str(answer_id), "up", "--user", "bob").output
    refused = cli("vote", "999", "+1", "--user", "bob", ok=False)
    assert refused.exit_code == 1 and "no answer #999" in refused.output

    # a correction, refused for a non-moderator, approved with an edit by a moderator
    assert "c1" in cli("correct", str(answer_id), "Use WireGuard", "--source", "doc:vpn", "--user", "bob").output
    assert "c1" in cli("review").output
    denied = cli("review", "approve", "c1", "--user", "bob", ok=False)
    assert denied.exit_code == 1 and "not a moderator" in denied.output
    cli("review", "approve", "c1", "--user", "mod", "--note", "ok", "--text", "Use the WireGuard client")
    assert "nothing to review" in cli("review").output

    # a proposal (the learning engine's job; here through the store API), approved and applied
    store = store_now()
    for n in (1, 2):
        p = store.proposals.create(summary=f"tuning {n}", diff={"n": n}, payload={"kind": "none", "n": n},
                                   created_by="learner")
        store.proposals.record_evaluation(p.id, {"ndcg@10": {"before": 0.5, "after": 0.6}}, n == 1)
    assert "p1" in cli("review").output and "p2" in cli("review").output
    assert cli("review", "approve", "p1", "--user", "bob", ok=False).exit_code == 1
    assert "version 1 is now live" in cli("review", "approve", "p1", "--user", "mod").output
    # p2 failed its evaluation: the CLI says how to override, and the override is audited
    failing = cli("review", "approve", "p2", "--user", "mod", "--no-apply", ok=False)
    assert failing.exit_code == 1 and "askloop review approve p2 --override" in failing.output
    assert "not live until it is applied" in cli("review", "approve", "p2", "--user", "mod", "--no-apply",
                                                "--override").output
    assert "p2" in cli("review").output  # approved but not applied: still waiting
    assert "version 2 is now live" in cli("review", "apply", "p2", "--user", "mod").output
    assert store.proposals.active_version().number == 2
    assert "proposal.approve_override" in cli("audit", "--action", "proposal").output

    # rollback: refused for others, works for a moderator
    assert cli("rollback", "1", "--user", "bob", ok=False).exit_code == 1
    assert store.proposals.active_version().number == 2
    assert "version 1 is active again" in cli("rollback", "1", "--user", "mod").output
    assert store.proposals.active_version().number == 1
    versions = cli("versions").output
    assert "tuning 1" in versions and "tuning 2" in versions

    # a new answer records the version that produced it (whatever tuning engine is installed)
    second = json.loads(cli("ask", "how do I request holidays?", "--json").output)
    assert store.answers.get(second["answer_id"]).tuning_version in (1, None)

    # stats, audit, export
    stats = json.loads(cli("stats", "--json").output)
    assert stats["windows"][0]["up"] == 2 and stats["windows"][0]["satisfaction"] == 1.0
    assert stats["active_version"] == 1 and stats["thresholds"]["answer_threshold"] == 0.35
    audit = cli("audit", "--since", "1h").output
    for action in ("vote.cast", "vote.replace", "correction.edit_approve", "proposal.apply", "version.rollback",
                   "moderation.denied"):
        assert action in audit
    out = tmp_path / "feedback.jsonl"
    assert "2 answer(s) written" in cli("export", "--format", "jsonl", "--output", str(out)).output
    first = json.loads(out.read_text().splitlines()[0])
    assert {v["user"]: v["value"] for v in first["votes"]} == {"alice": 1, "bob": 1}
    assert first["corrections"][0]["text"] == "Use the WireGuard client"
    rows = list(csv.DictReader(io.StringIO(cli("export", "--format", "csv").output)))
    assert len(rows) == 2 and rows[0]["up"] == "2"
    store.close()


def test_flag_and_bad_input_from_the_cli(cli_env, tiny_corpus):
    cli("ingest", str(tiny_corpus))
    answer_id = json.loads(cli("ask", "who carries the pager?", "--json").output)["answer_id"]
    assert cli("flag", "troll", "--user", "troll", ok=False).exit_code == 1
    cli("flag", "troll", "--reason", "brigading", "--user", "mod")
    assert "not counted" in cli("vote", str(answer_id), "down", "--user", "troll").output
    cli("unflag", "troll", "--user", "mod")
    assert "counts with weight" in cli("vote", str(answer_id), "down", "--user", "troll").output
    for args, message in [
        (("review", "approve", "x12", "--user", "mod"), "is not a reference"),
        (("review", "approve", "c99", "--user", "mod"), "no correction c99"),
        (("vote", str(answer_id), "sideways"), "not a vote"),
        (("audit", "--since", "last tuesday"), "--since"),
        (("export", "--format", "xml"), "unknown format"),
        (("rollback", "5", "--user", "mod"), "no version 5"),
        (("correct", str(answer_id), "--user", "bob"), "needs better answer text"),
        (("correct", str(answer_id), "--source", "doc:nope", "--user", "bob"), "no document in the knowledge base"),
    ]:
        result = cli(*args, ok=False)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def run_shell(services, user: str, lines: list[str]) -> str:
    from bot.shell import Shell
    from bot.shell_feedback import register

    out = io.StringIO()
    loop = services.loop
    shell = Shell(
        loop, user=user, console=Console(file=out, width=200, highlight=False),
        ask=lambda q: loop.answer(q, asker=user, origin="shell"), show=lambda a: None, errors=(FeedbackError,),
    )
    register(shell)
    shell.run(io.StringIO("\n".join(lines) + "\n"), interactive=False)
    return out.getvalue()


def test_shell_feedback_commands(tiny_services, monkeypatch):
    services = tiny_services
    services.settings.moderators = ["mod"]
    out = run_shell(services, "bob", [
        "+1",  # nothing asked yet
        "how do I connect to the VPN?",
        "+1",
        "-1 it is outdated",
        "correct: Use WireGuard doc:vpn",
        "/approve c1",
    ])
    assert "ask a question first" in out and "not a moderator" in out
    store = services.loop.store
    [recorded] = store.answers.recent()
    assert recorded.origin == "shell" and recorded.asker == "bob" and recorded.shown[0].doc_id == "vpn"
    [vote] = store.votes.for_answer(recorded.id)
    assert (vote.user, vote.value, vote.reason) == ("bob", -1, "it is outdated")
    [correction] = store.corrections.find()
    assert (correction.text, correction.source_ref, correction.status) == ("Use WireGuard", "vpn", "pending")

    p = store.proposals.create(summary="t", diff={}, payload={"kind": "none"}, created_by="learner")
    store.proposals.record_evaluation(p.id, {}, False)
    out = run_shell(services, "mod", ["/review", "/approve c1 good", f"/approve p{p.id}",
                                      f"/approve p{p.id} --override the gate is wrong here", "/versions",
                                      "/rollback 0", "/stats"])
    assert "c1" in out and f"p{p.id}" in out and f"/approve p{p.id} --override" in out
    assert "version 1 is now live" in out and "override" in out
    assert "base index is active again" in out and "satisfaction" in out
    assert store.corrections.get(correction.id).status == "approved" and store.proposals.active_version() is None
    assert store.proposals.get(p.id).note == "the gate is wrong here"
