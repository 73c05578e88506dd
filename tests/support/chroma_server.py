"""A real Chroma server for tests: `chroma run --path TMP --port P` on 127.0.0.1.

Started once per test module (it takes about a second), stopped at the end; `stop()` and
`start()` again on the same port and path let fault tests take the vector store away mid-run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMA_BIN = Path(sys.executable).with_name("chroma")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ChromaServer:
    def __init__(self, path: Path, port: int | None = None) -> None:
        self.path = path
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = path.parent / f"chroma-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def heartbeat_ok(self) -> bool:
        for suffix in ("/api/v2/heartbeat", "/api/v1/heartbeat"):
            try:
                with urllib.request.urlopen(self.url + suffix, timeout=1) as response:
                    if response.status == 200:
                        return True
            except Exception:
                continue
        return False

    def start(self, timeout: float = 30.0) -> None:
        if not CHROMA_BIN.exists():
            pytest.skip(f"the chroma CLI is not installed ({CHROMA_BIN})")
        self.path.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
        self.process = subprocess.Popen(
            [str(CHROMA_BIN), "run", "--path", str(self.path), "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chroma run exited ({self.process.returncode}): {self.tail()}")
            if self.heartbeat_ok():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"chroma run did not answer its heartbeat within {timeout}s: {self.tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        # Wait until the port is really free, so a restart on the same port succeeds.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.heartbeat_ok():
            time.sleep(0.1)

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path_factory.mktemp("chroma") / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()
