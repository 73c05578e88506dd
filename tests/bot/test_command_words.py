"""Unknown commands are refused with the closest known one, and never asked or recorded."""

from __future__ import annotations

import asyncio
import io

import pytest
from rich.console import Console

from bot.command_words import closest_command, unknown_command
from bot.shell import Shell
from bot.shell_feedback import register
from bot.slack.commands import ack_command, subcommand
from retrieval.search import QuestionError

SHELL = ["/help", "/review", "/approve", "/reject", "/stats", "+1", "-1", "correct", "/quit"]


@pytest.mark.parametrize("text, expected", [
    ("/frobnicate", "unknown command '/frobnicate'"),
    ("/aprove c1", "unknown command '/aprove' — did you mean /approve?"),
    ("+5", "unknown command '+5' — did you mean +1?"),
    ("-3 outdated", "unknown command '-3' — did you mean -1?"),
    ("+", "unknown command '+' — did you mean +1?"),
    ("stat", "unknown command 'stat' — did you mean /stats?"),
    ("stats", "unknown command 'stats' — did you mean /stats?"),
    ("corect: better text", "unknown command 'corect:' — did you mean correct?"),
])
def test_command_like_lines_are_unknown_commands(text: str, expected: str) -> None:
    assert unknown_command(text, SHELL) == expected


@pytest.mark.parametrize("text", [
    "How do I connect to the VPN?", "kubernetes", "vpn", "review the deploy policy please",
    "/approve c1", "+1 great", "correct: use the portal", "-1",
])
def test_questions_and_known_commands_pass(text: str) -> None:
    assert unknown_command(text, SHELL) is None


def test_closest_command_keeps_the_interface_spelling() -> None:
    assert closest_command("reveiw", ["help", "stats", "review"]) == "review"
    assert closest_command("zzz", ["help", "stats", "review"]) is None


def make_shell(services) -> tuple[Shell, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=200, highlight=False, color_system=None)
    shell = Shell(services.loop, user="ada", console=console,
                  ask=lambda q: services.loop.answer(q, asker="ada", origin="shell"),
                  show=lambda answer: console.print(answer.text), errors=(QuestionError,))
    register(shell)
    return shell, out


def test_the_shell_refuses_unknown_commands_and_records_nothing(tiny_services) -> None:
    shell, out = make_shell(tiny_services)
    before = tiny_services.loop.stats().windows[-1].answers
    code = shell.run(io.StringIO("/frobnicate\n+5\n/aprove c1\nstat\n"), interactive=False)
    text = out.getvalue()
    assert code == 1 and shell.failures == 4  # a script sees the refusals
    assert "unknown command '/frobnicate'" in text and "did you mean +1?" in text
    assert "did you mean /approve?" in text and "did you mean /stats?" in text
    assert tiny_services.loop.stats().windows[-1].answers == before  # nothing was asked
    assert shell.last_answer is None


def test_slash_askloop_subcommands() -> None:
    assert subcommand("") == "help"
    assert subcommand("stats") == "stats" and subcommand("STATS") == "stats"
    for text in ("/frobnicate", "+5", "+1", "stat", "reveiw"):
        assert subcommand(text) == "unknown", text
    for text in ("how do I connect to the VPN?", "kubernetes", "review process for deploys?"):
        assert subcommand(text) == "ask", text


def test_slash_askloop_acknowledges_an_unknown_command_with_the_closest_one() -> None:
    said: list[dict] = []

    async def ack(**kwargs):
        said.append(kwargs)

    asyncio.run(ack_command(ack, {"text": "stat"}))
    asyncio.run(ack_command(ack, {"text": "/frobnicate"}))
    assert "unknown command 'stat' — did you mean stats?" in said[0]["text"]
    assert "Nothing was asked" in said[0]["text"] and "/askloop stats" in said[0]["text"]
    assert "unknown command '/frobnicate'" in said[1]["text"]
