"""How long `askloop` takes to start: whole processes, timed from the outside, as a person waits.

Times `askloop --help`, `askloop stats` and `askloop ask` (each a fresh process: nothing is
warm but the operating system's file cache) on a data folder of its own holding the sample
handbook, and says how much of each is spent importing modules (`python -X importtime`, summed
over top-level imports) and which imports cost most. `askloop --help`, `stats`, `review` and
`versions` need no model and no vector store: they should start in well under a second on a
quiet machine; `ask` pays for torch, sentence-transformers and chromadb once per process.

    .venv/bin/python benchmarks/startup_bench.py [--runs 5] [--source DIR ...] [--json]

`--source DIR` times the code in another checkout (its `bot`, `feedback` and `retrieval`
packages are put first on the import path); given twice (`--source OLD --source NEW`), the runs
of the two alternate, so a machine whose load changes during the measurement treats both alike,
and a before → after table ends the report.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "handbook"
COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "stats": ["stats"],
    "review": ["review"],
    "versions": ["versions"],
    "ask": ["ask", "Who approves my holidays?"],
}
_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)")


def environment(source: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASKLOOP_", "SLACK_"))}
    env.update(ASKLOOP_HOME=str(home), PYTHONPATH=str(source), HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False",
               TOKENIZERS_PARALLELISM="false", COLUMNS="100")
    return env


def askloop(args: list[str], env: dict[str, str], *, importtime: bool = False) -> subprocess.CompletedProcess[str]:
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-m", "bot.cli", *args], env=env, cwd=env["ASKLOOP_HOME"],
                          capture_output=True, text=True, timeout=600)


def wall_times(args: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = askloop(args, env)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"askloop {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return times


def import_profile(args: list[str], env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """(seconds spent importing, seconds per package) for one run of `args`: a package's time is
    the sum of its own modules' self times, wherever they were imported from."""
    done = askloop(args, env, importtime=True)
    total, packages = 0.0, {}
    for line in done.stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if not match:
            continue
        own, cumulative, depth, name = int(match.group(1)), int(match.group(2)), len(match.group(3)), match.group(4)
        if depth == 1:  # a top-level import: its cumulative time includes everything below it
            total += cumulative / 1e6
        top = name.split(".")[0]
        packages[top] = packages.get(top, 0.0) + own / 1e6
    return total, packages


def measure(sources: list[Path], names: list[str], runs: int, folder: Path) -> dict[str, dict[str, dict[str, object]]]:
    """Per source, per command: wall times of `runs` alternating processes and one import profile."""
    envs = []
    for number, source in enumerate(sources):
        home = folder / f"home{number}"
        home.mkdir()
        env = environment(source.resolve(), home)
        prepared = askloop(["ingest", str(SAMPLE)], env)
        if prepared.returncode != 0:
            raise SystemExit(f"could not ingest the sample with {source}:\n{prepared.stderr[-2000:]}")
        askloop(COMMANDS["ask"], env)  # the first answer also builds the keyword index: not a start-up cost
        envs.append(env)
    results: dict[str, dict[str, dict[str, object]]] = {str(s): {} for s in sources}
    for name in names:
        args = COMMANDS[name]
        times: list[list[float]] = [[] for _ in sources]
        for _ in range(runs):
            for number, env in enumerate(envs):  # alternate: load changes hit every source alike
                times[number] += wall_times(args, env, 1)
        for number, (source, env) in enumerate(zip(sources, envs)):
            imports, heavy = import_profile(args, env)
            results[str(source)][name] = {
                "median_s": round(statistics.median(times[number]), 3),
                "min_s": round(min(times[number]), 3),
                "runs": runs,
                "import_s": round(imports, 3),
                "heavy_imports_s": {k: round(v, 3) for k, v in sorted(heavy.items(), key=lambda kv: -kv[1])[:8]},
            }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="processes per command (the median is reported)")
    parser.add_argument("--source", type=Path, action="append", help="a checkout whose code is timed (default: this one)")
    parser.add_argument("--commands", default=",".join(COMMANDS), help="comma list of: " + ", ".join(COMMANDS))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    options = parser.parse_args()
    runs = max(1, min(options.runs, 50))
    sources = options.source or [ROOT]
    names = [n.strip() for n in options.commands.split(",") if n.strip()]
    unknown = [n for n in names if n not in COMMANDS]
    if unknown:
        parser.error(f"unknown command(s): {', '.join(unknown)}")
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="askloop-startup-") as folder:
        results = measure(sources, names, runs, Path(folder))
    if options.json:
        print(json.dumps({"load": load, "runs": runs, "sources": results}))
        return 0
    for source, commands in results.items():
        print(f"askloop start-up, code from {source} (load average {load:.1f} at the start, {runs} runs each)")
        print(f"{'command':<10} {'median':>8} {'min':>8} {'imports':>8}  heaviest imports")
        for name, r in commands.items():
            heavy = ", ".join(f"{k} {v:.2f}" for k, v in list(r["heavy_imports_s"].items())[:4])  # type: ignore[attr-defined]
            print(f"{name:<10} {r['median_s']:>7.2f}s {r['min_s']:>7.2f}s {r['import_s']:>7.2f}s  {heavy}")
        print()
    if len(results) == 2:
        before, after = results.values()
        print("median before → after")
        for name in names:
            print(f"{name:<10} {before[name]['median_s']:>6.2f}s → {after[name]['median_s']:.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
