"""Helpers for the operations tests: scratch PostgreSQL databases, processes, scraping metrics."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
ASKLOOP = Path(sys.executable).with_name("askloop")


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (dropped afterwards), as a SQLAlchemy URL.

    Tests that terminate connections or run migrations get a database of their own, so they
    never disturb anyone else using the shared server.
    """
    name = f"askloop_ops_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_dsn(admin_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(_dsn(admin_url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def terminate_other_connections(url: str) -> int:
    """What a PostgreSQL restart does to the bot: every other session of this database is killed."""
    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0.0 when none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(4))
    return total


def wait_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except Exception as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s ({last})")


def askloop_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASKLOOP_", "SLACK_"))}
    env.update(HF_HUB_OFFLINE="1", ANONYMIZED_TELEMETRY="False", TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


def run_askloop(*args: str, env: dict[str, str], timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ASKLOOP), *args], env=env, cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout
    )


# -- the Docker files, read as data, so tests run exactly their commands -----------------------
DOCKER = ROOT / "docker"


def compose() -> dict:
    import yaml

    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def compose_command(service: str) -> list[str]:
    return list(compose()["services"][service]["command"])


def dockerfile_exec_form(instruction: str) -> list[str]:
    """The JSON (exec-form) argument list of the Dockerfile's CMD or HEALTHCHECK ... CMD."""
    import json

    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith(instruction + " "):
            return json.loads(line[line.index("[") :])
    raise AssertionError(f"no {instruction} in docker/Dockerfile")


def with_listen(argv: list[str], host: str, port: int) -> list[str]:
    """The same command listening elsewhere (two replicas cannot share port 3000 on one host)."""
    out = list(argv)
    out[out.index("--host") + 1] = host
    out[out.index("--port") + 1] = str(port)
    return out


class ServiceProcess:
    """One long-running askloop command (a replica, the worker) with its output in a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> None:
        self.argv, self.env, self.log_path, self.cwd = argv, env, log_path, cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "ServiceProcess":
        argv = [str(ASKLOOP), *self.argv[1:]] if self.argv[0] == "askloop" else self.argv
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(argv, env=self.env, cwd=self.cwd, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def json_lines(self) -> list[dict]:
        import json

        return [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]

    def stop(self, sig: int = 15, timeout: float = 15) -> int | None:
        import signal as signals

        if self.process is None:
            return None
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signals.SIGKILL)
                self.process.wait(5)
        return self.process.returncode
