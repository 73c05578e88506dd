"""Commands that need no model start fast: they never import torch, sentence-transformers, chromadb
(or LangChain), checked in a fresh process as people run them. How fast: benchmarks/startup_bench.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "sentence_transformers", "transformers", "chromadb", "langchain_core", "langchain")
PROBE = """
import json, sys
sys.argv = ["askloop", *json.loads(sys.argv[1])]
from bot.cli import main
try:
    main()
except SystemExit:
    pass
with open({out!r}, "w") as f:
    json.dump(sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r}), f)
"""


def loaded_by(args: list[str], home: Path, tmp_path: Path) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASKLOOP_", "SLACK_"))}
    env.update(ASKLOOP_HOME=str(home), PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    done = subprocess.run([sys.executable, "-c", PROBE.format(out=str(out), heavy=set(HEAVY)), json.dumps(args)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    return json.loads(out.read_text()), done


@pytest.mark.parametrize("args", [["--help"], ["stats"], ["stats", "--json"], ["review"], ["versions"], ["audit"],
                                  ["review", "approve", "--help"]])
def test_commands_without_a_model_import_none_of_it(args: list[str], home: Path, tmp_path: Path) -> None:
    modules, done = loaded_by(args, home, tmp_path)
    assert done.returncode == 0, done.stderr
    assert modules == [], f"askloop {' '.join(args)} imported {modules}"


def test_help_shows_no_type_noise(home: Path, tmp_path: Path) -> None:
    for args in (["--help"], ["review", "approve", "--help"], ["eval", "--help"], ["ingest", "--help"]):
        _, done = loaded_by(args, home, tmp_path)
        assert done.returncode == 0, done.stderr
        for noise in ("<bool>", "<str>", "<int", "<float", "<path>", "<list"):
            assert noise not in done.stdout, (args, noise, done.stdout)
    _, done = loaded_by(["review", "approve", "--help"], home, tmp_path)
    assert "--note" in done.stdout and "TEXT" in done.stdout and "--override" in done.stdout
