"""`askloop shell`: one message per line, from a person or a pipe; ends at end of input."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
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

    shell.prompt = typed
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


def test_a_line_that_is_not_utf8_is_one_error_and_the_session_goes_on(cli, tiny_corpus: Path) -> None:
    assert cli("ingest", tiny_corpus).exit_code == 0
    result = cli("shell", input=b"How do I request holidays?\n\xff\xfe caf\xe9?\nWhen can I deploy to production?\n")
    assert result.exit_code == 1  # piped: the script sees that a line failed
    assert result.stdout.count("error:") == 1 and "line 2 is not UTF-8 text" in result.stdout
    assert result.stdout.count("Sources:") == 2 and "Traceback" not in result.stdout


def test_typed_lines_are_edited_and_recalled_with_prompt_toolkit(tiny_services, tmp_path: Path) -> None:
    """The prompt is prompt_toolkit's: Up recalls the last line (kept in the history file), and a
    Ctrl-C at the prompt drops the line being typed, not the session."""
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    history = tmp_path / "history"
    shell, out = make_shell(tiny_services)
    asked: list[str] = []
    shell._ask = lambda q: (asked.append(q), tiny_services.loop.answer(q, asker="ada", origin="shell"))[1]
    typing = iter(["How do I request holidays?\r",
                   "\x1b[A\r",  # Up, Enter: the same question again
                   "never sent\x03",  # Ctrl-C while typing
                   "/quit\r"])
    with create_pipe_input() as keys:
        prompt = shell.make_prompt(history, input=keys, output=DummyOutput())

        def typed(text: str) -> str:  # the person types each line when the prompt shows
            keys.send_text(next(typing))
            return prompt(text)

        shell.prompt = typed
        assert shell.run(io.StringIO(), interactive=True) == 0
    assert asked == ["How do I request holidays?", "How do I request holidays?"]
    assert "How do I request holidays?" in history.read_text(encoding="utf-8")
    assert "never sent" not in history.read_text(encoding="utf-8")


def test_the_local_owner_is_told_they_moderate(tiny_services) -> None:
    from bot.services import Services

    owner = Services(tiny_services.settings, local_owner="ada")
    shell, out = make_shell(owner)
    shell.prompt = lambda text: "/quit"
    shell.run(io.StringIO(), interactive=True)
    assert "a moderator here" in out.getvalue()
    other, out = make_shell(tiny_services)
    other.prompt = lambda text: "/quit"
    other.run(io.StringIO(), interactive=True)
    assert "moderator" not in out.getvalue()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see the model loading")
def test_ctrl_c_during_the_first_answer_stops_it_cleanly(services, tiny_corpus: Path, home: Path, tmp_path: Path) -> None:
    """SIGINT while the model loads for the first question: one "interrupted" line, no traceback or
    "Exception ignored", and the next question is answered."""
    services.ingestor.run([tiny_corpus])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASKLOOP_", "SLACK_"))}
    env["ASKLOOP_HOME"] = str(home)
    # the torch backend: its first load takes seconds, a window wide enough to interrupt for sure
    env["ASKLOOP_EMBEDDING_BACKEND"] = "torch"
    process = subprocess.Popen([str(Path(sys.executable).parent / "askloop"), "shell"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path, text=True)
    try:
        assert process.stdin is not None
        process.stdin.write("Who approves my holidays?\n")
        process.stdin.flush()
        # Wait until the shell is loading torch for this first question (it takes seconds), then Ctrl-C.
        maps = Path(f"/proc/{process.pid}/maps")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "libtorch" not in maps.read_text(errors="replace"):
            time.sleep(0.05)
        assert time.monotonic() < deadline, "the model never started loading"
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        out, err = process.communicate("How long until I get a new laptop?\n", timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert "interrupted" in out, (out, err)
    assert TINY_CORPUS[4]["text"][:40] in out
    assert "Traceback" not in err and "Exception ignored" not in err, err
