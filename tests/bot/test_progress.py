"""Long work is shown as it happens: the first model load, learning's steps, the evaluation's phases;
and Ctrl-C stops a wait at once."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bot.cli import app
from bot.progress import LOADING, Phases, first_load, interruptible

runner = CliRunner()


def test_phases_name_each_step_and_time_it_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    phases = Phases(console)
    with phases.running():
        phases.step("learning from 3 vote(s)")
        time.sleep(1.2)
        phases.step("evaluating proposal p1")
    text = out.getvalue()
    assert "learning from 3 vote(s)…" in text  # the spinner's line while it runs
    assert "learning from 3 vote(s): 1." in text and "evaluating proposal p1: " in text  # and how long it took


def test_phases_are_plain_lines_in_logs_and_silent_for_json() -> None:
    out = io.StringIO()
    phases = Phases(Console(file=out, width=100, color_system=None))
    phases.step("embedding questions")
    phases.done()
    assert out.getvalue() == "embedding questions…\n"
    quiet = io.StringIO()
    Phases(Console(file=quiet), enabled=False).step("anything")
    assert quiet.getvalue() == ""


def test_the_first_load_shows_a_spinner_once(services) -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    assert not services.ready
    first_load(services, console)
    assert services.ready and LOADING in out.getvalue()
    before = out.getvalue()
    first_load(services, console)
    assert out.getvalue() == before  # loaded: nothing to show


def test_interruptible_returns_raises_and_stops_waiting_on_ctrl_c() -> None:
    assert interruptible(lambda: 42) == 42
    with pytest.raises(ValueError):
        interruptible(lambda: (_ for _ in ()).throw(ValueError("from the worker")))
    release = threading.Event()
    timer = threading.Timer(0.3, lambda: __import__("_thread").interrupt_main())
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        interruptible(lambda: release.wait(30))  # Ctrl-C arrives while the work still runs
    assert time.monotonic() - started < 5
    release.set()


def test_learn_says_what_it_is_doing(tiny_services) -> None:
    loop = tiny_services.loop
    answered = loop.answer("How do I request holidays?", asker="ada", origin="cli")
    loop.vote(answered.answer_id, "ada", 1)
    result = runner.invoke(app, ["learn"])
    assert result.exit_code == 0, result.output
    assert "learning from 1 vote(s) and 0 approved correction(s)" in result.stderr
    assert "evaluating proposal p1 on the golden set and recent questions" in result.stderr
    assert "Proposal p1" in result.stdout
    machine = runner.invoke(app, ["learn", "--json"])
    assert machine.exit_code == 0 and json.loads(machine.stdout)["proposal"] == 1  # nothing but JSON for scripts
    assert "learning from" not in machine.stderr and "evaluating proposal" not in machine.stderr
