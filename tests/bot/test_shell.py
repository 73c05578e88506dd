"""`askloop shell`: one message per line, from a person or a pipe; ends at end of input."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bot import shell as shell_module
from bot.cli import app
from bot.shell import Shell
from retrieval.search import QuestionError
from tests.conftest import TINY_CORPUS
from tests.support.retrieval import drop_leaked_log_handlers


@pytest.fixture()
def cli(home: Path, embedder):
    drop_leaked_log_handlers()
    runner = CliRunner()
    return lambda *args, input=None: runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)


def make_shell(services) -> tuple[Shell, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=200, highlight=False, color_system=None)
    shell = Shell(
        services.loop,
        user="ada",
        console=console,
        ask=lambda q: services.loop.answer(q, asker="ada", origin="shell"),
        show=lambda answer: console.print(answer.text),
        errors=(QuestionError,),
    )
    return shell, out


def test_piped_questions_are_answered_in_order(cli, tiny_corpus: Path) -> None:
    assert cli("ingest", tiny_corpus).exit_code == 0
    result = cli("shell", input="How do I connect to the VPN?\n\n   \nWhen can I deploy to production?\n")
    assert result.exit_code == 0
    out = result.stdout
    vpn, deploy = out.find(TINY_CORPUS[0]["text"][:40]), out.find(TINY_CORPUS[5]["text"][:40])
    assert 0 <= vpn < deploy
    assert out.count("Sources:") == 2  # blank lines are not questions
    assert "you>" not in out  # no prompt when reading from a pipe


def test_bad_question_in_the_shell_is_one_error_and_the_session_goes_on(tiny_services) -> None:
    shell, out = make_shell(tiny_services)
    code = shell.run(io.StringIO("x" * 50_000 + "\nHow do I request holidays?\n"), interactive=False)
    assert code == 1  # piped: the script must see that a line failed
    text = out.getvalue()
    assert "error: the question is too long (50,000 characters; the limit is 2,000)" in text
    assert TINY_CORPUS[2]["text"] in text
    assert shell.failures == 1
    assert shell.last_answer is not None and shell.last_answer.hits[0].doc_id == "holidays"


def test_an_interactive_session_ends_with_status_0_even_after_errors(tiny_services, monkeypatch) -> None:
    shell, out = make_shell(tiny_services)
    lines = iter(["x" * 50_000, "How do I request holidays?"])

    def typed(prompt: str = "") -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr(shell.console, "input", typed)
    assert shell.run(io.StringIO(), interactive=True) == 0
    assert shell.failures == 1 and "error: the question is too long" in out.getvalue()


def test_quit_stops_reading(tiny_services) -> None:
    shell, out = make_shell(tiny_services)
    shell.run(io.StringIO("/quit\nHow do I request holidays?\n"), interactive=False)
    assert out.getvalue() == "" and shell.last_answer is None


def test_help_lists_registered_commands(tiny_services) -> None:
    shell, out = make_shell(tiny_services)
    shell.run(io.StringIO("/help\n"), interactive=False)
    text = out.getvalue()
    assert "/quit — leave" in text
    for name, (_, help_text) in shell_module.COMMANDS.items():
        assert f"{name} — {help_text}" in text


def test_other_modules_can_add_commands(tiny_services, monkeypatch) -> None:
    monkeypatch.setitem(shell_module.COMMANDS, "/echo", (lambda sh, rest: sh.say(f"echo:{rest}"), "repeat"))
    shell, out = make_shell(tiny_services)
    shell.run(io.StringIO("/echo hello there\n/echo: colon form\n"), interactive=False)
    assert out.getvalue().splitlines() == ["echo:hello there", "echo:colon form"]
    assert shell.last_answer is None  # a command is not a question


def test_shell_on_an_empty_knowledge_base_reports_and_goes_on(cli) -> None:
    result = cli("shell", input="anything?\nstill there?\n")
    assert result.exit_code == 1  # every line failed
    assert result.stdout.count("the knowledge base is empty") == 2
    assert "Traceback" not in result.stdout


def test_real_console_script_reads_a_pipe_until_it_ends(services, tiny_corpus: Path, home: Path, tmp_path: Path) -> None:
    services.ingestor.run([tiny_corpus])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASKLOOP_", "SLACK_"))}
    env["ASKLOOP_HOME"] = str(home)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "askloop"), "shell"],
        input="Who approves my holidays?\nHow long until I get a new laptop?\n",
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert TINY_CORPUS[2]["text"][:40] in done.stdout
    assert TINY_CORPUS[4]["text"][:40] in done.stdout
    assert "Traceback" not in done.stderr
