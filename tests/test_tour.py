"""The README's five-minute tour, run as a new user types it: every `askloop` line of the tour block,
in order, with the installed console script, from the checkout, on a data folder of its own.

The tour is the promise of the front page (ingest → ask → vote → correct → review → learn →
approve → rollback); if a command in it stops working, or stops doing what the README says
beside it, this fails.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASKLOOP = Path(sys.executable).parent / "askloop"
NO_MATCH = "I couldn't find a good match"


def tour_commands() -> list[list[str]]:
    """The `askloop …` lines between the README's tour markers, comments stripped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- tour[^>]*-->\s*```sh\n(.*?)```\s*<!-- /tour -->", text, re.S)
    assert block, "README.md has no tour block"
    commands = []
    for line in block.group(1).splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "askloop":
            commands.append(words[1:])
    return commands


def test_the_tour_is_the_loop_in_order() -> None:
    verbs = [" ".join(c[:2]) if c[0] == "review" else c[0] for c in tour_commands()]
    order = ["ingest", "ask", "vote", "correct", "review", "learn", "review approve", "rollback"]
    position = -1
    for step in order:  # each step of the loop comes after the one before it
        assert step in verbs[position + 1:], (step, verbs)
        position = verbs.index(step, position + 1)


@pytest.mark.slow
def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASKLOOP_", "SLACK_"))}
    env.update(ASKLOOP_HOME=str(tmp_path / "tour"), COLUMNS="120")
    outputs: list[tuple[list[str], str]] = []
    for args in tour_commands():
        done = subprocess.run([str(ASKLOOP), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"askloop {shlex.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr
        outputs.append((args, done.stdout))

    def output(*prefix: str, nth: int = 0) -> str:
        found = [out for args, out in outputs if args[: len(prefix)] == list(prefix)]
        return found[nth]

    assert "documents 8 added" in output("ingest")
    assert "answer #1" in output("ask") and "holidays.md" in output("ask")
    assert output("ask", nth=1).startswith(NO_MATCH) and "answer #2" in output("ask", nth=1)
    assert "knowledge gaps" in output("stats") and "business class" in output("stats")
    assert "correction c1 is waiting" in output("correct")
    assert "c1" in output("review") and "approved" in output("review", "approve", "c1")
    learned = output("learn")
    assert "Proposal p1 (evaluated)" in learned and "PASSED" in learned and "expenses.md" in learned
    assert "What it changes" in output("review", "show", "p1")
    assert "version 1 is now live" in output("review", "approve", "p1")
    reworded = output("ask", nth=2)
    assert not reworded.startswith(NO_MATCH) and "expenses.md" in reworded.split("Sources:")[1].splitlines()[1]
    assert "▶ version 1" in output("versions")
    assert "base index (no tuning) is active again" in output("rollback")
    assert output("ask", nth=3).startswith(NO_MATCH)
