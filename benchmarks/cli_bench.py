"""Whole-process timings of the CLI: `askloop --help`, `askloop stats`, `askloop ask` (cold).

Every run is a new process, as a person at a shell starts it (the operating system's file cache
is warm after the first). A data dir is prepared first: the first covid-qa documents ingested,
one question asked, and each backend's export made, so a timed `ask` pays what every later
`ask` pays. Runs of the commands alternate; printed per command: median and best wall time,
peak memory, and which heavy libraries the process imported (none may be imported by a command
that needs no model).

    .venv/bin/python benchmarks/cli_bench.py [--runs 5] [--backends onnx-fp32 onnx-int8 torch]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
HEAVY = ("torch", "sentence_transformers", "transformers", "chromadb", "onnxruntime", "langchain_core", "peft")
QUESTION = "Where does the virus come from?"
# Runs `askloop ARGS...` in this process and reports which heavy modules it imported (stderr).
# `askloop ask` ends without the interpreter's teardown (bot.cli_app.exit_quickly), which skips
# atexit: the report is also printed just before that.
RUNNER = (
    "import sys, atexit\n"
    "heavy = sys.argv.pop(1).split(',')\n"
    "report = lambda: print('IMPORTED ' + ' '.join(m for m in heavy if m in sys.modules), file=sys.stderr, flush=True)\n"
    "atexit.register(report)\n"
    "sys.argv[0] = 'askloop'\n"
    "import bot.cli\n"
    "quick = bot.cli.exit_quickly\n"
    "bot.cli.exit_quickly = lambda: (report(), quick())[1]\n"
    "bot.cli.main()\n"
)


def run(args: list[str], env: dict[str, str]) -> tuple[float, int, str, int, str]:
    """Wall seconds, the child's peak memory (KB), the heavy modules it imported, exit code, stderr."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", RUNNER, ",".join(HEAVY), *args], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    imported = next((line[9:] for line in stderr.splitlines() if line.startswith("IMPORTED ")), "?")
    return seconds, usage.ru_maxrss, imported.strip() or "-", child.returncode, stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=["onnx-fp32", "onnx-int8", "torch"])
    parser.add_argument("--documents", type=int, default=60, help="covid-qa documents ingested first")
    args = parser.parse_args()
    corpus = DATA / "covid-qa" / "corpus.jsonl"
    with tempfile.TemporaryDirectory(prefix="askloop-clibench-") as tmp:
        small = Path(tmp) / "corpus.jsonl"
        small.write_text("".join(corpus.read_text(encoding="utf-8").splitlines(True)[: args.documents]), encoding="utf-8")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("ASKLOOP_", "SLACK_"))}
        base |= {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
                 "TOKENIZERS_PARALLELISM": "false"}
        commands: list[tuple[str, list[str], dict[str, str]]] = []
        for backend in args.backends:
            env = base | {"ASKLOOP_HOME": str(Path(tmp) / backend), "ASKLOOP_EMBEDDING_BACKEND": backend}
            for prepare in (["db", "upgrade"], ["ingest", str(small)], ["ask", QUESTION]):
                _, _, _, code, stderr = run(prepare, env)
                if code != 0:
                    sys.exit(f"{' '.join(prepare)} failed on {backend}: {stderr[-2000:]}")
            commands.append((f"ask ({backend})", ["ask", QUESTION], env))
        first = base | {"ASKLOOP_HOME": str(Path(tmp) / args.backends[0])}
        commands = [("--help", ["--help"], first), ("stats", ["stats"], first)] + commands
        times: dict[str, list[float]] = {name: [] for name, _, _ in commands}
        memory: dict[str, list[int]] = {name: [] for name, _, _ in commands}
        imports: dict[str, str] = {}
        for round_number in range(args.runs):
            order = commands if round_number % 2 == 0 else commands[::-1]
            for name, argv, env in order:
                seconds, peak, imported, code, stderr = run(argv, env)
                if code != 0:
                    sys.exit(f"askloop {' '.join(argv)} failed: {stderr[-2000:]}")
                times[name].append(seconds)
                memory[name].append(peak)
                imports[name] = imported
        print(f"{args.runs} runs each, alternating; load average {os.getloadavg()[0]:.1f}")
        for name, _, _ in commands:
            values = times[name]
            print(f"askloop {name:<18} median {statistics.median(values):.2f} s, best {min(values):.2f} s, "
                  f"peak memory {max(memory[name]) / 1024:.0f} MB; heavy modules imported: {imports[name]}")
        print(json.dumps({name: round(statistics.median(v), 3) for name, v in times.items()}))


if __name__ == "__main__":
    main()
