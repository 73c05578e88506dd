"""Fault injection for tests and benchmarks: a TCP proxy that cuts or stalls a service, and
hard kills of the processes we start (a `chroma run` server, `askloop serve`).

Everything here listens on and connects to loopback addresses only, and every wait is bounded.

`FaultProxy` sits between a client (the bot) and a server (PostgreSQL) and has three modes:
- `passing()`: bytes flow both ways;
- `cut()`: every open connection is reset (RST, as when a server host dies) and new ones are
  refused (the listening socket is closed) until `passing()` re-opens it on the same port;
- `stall()`: connections are accepted but nothing is forwarded in either direction, as with a
  hung server or a black-holed network: clients wait for replies that do not come. `passing()`
  lets the held bytes through again.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import threading
import time
from typing import Any

_LOOPBACK = "127.0.0.1"


def _reset(sock: socket.socket) -> None:
    """Wake any thread blocked on `sock`, then close it with RST instead of FIN."""
    try:
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Pair:
    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream: socket.socket | None = None
        self.dead = threading.Event()

    def reset(self) -> None:
        self.dead.set()
        for sock in (self.client, self.upstream):
            if sock is not None:
                _reset(sock)


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, max_connections: int = 256) -> None:
        if target_host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault proxy only relays to loopback services")
        self.target = (target_host, target_port)
        self.max_connections = max_connections
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._pairs: list[_Pair] = []
        self._closed = False
        self._listener = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self.mode = "passing"

    @classmethod
    def for_url(cls, url: str) -> "FaultProxy":
        """A proxy in front of the server of a database URL."""
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        return cls(parsed.host or _LOOPBACK, parsed.port or 5432)

    def route(self, url: str) -> str:
        """`url` with its host and port replaced by this proxy's."""
        from sqlalchemy.engine import make_url

        return make_url(url).set(host=_LOOPBACK, port=self.port).render_as_string(hide_password=False)

    # -- modes ----------------------------------------------------------------------------------

    def passing(self) -> None:
        """Forward again (after a cut, new connections are accepted on the same port)."""
        with self._lock:
            if self._listener is None:
                self._listener = self._listen(self.port)
            self.mode = "passing"
        self._flowing.set()

    def cut(self) -> None:
        """Reset every connection and refuse new ones."""
        with self._lock:
            self.mode = "cut"
            listener, self._listener = self._listener, None
            pairs, self._pairs = self._pairs, []
        if listener is not None:
            listener.close()
        for pair in pairs:
            pair.reset()

    def stall(self) -> None:
        """Accept, but forward nothing either way."""
        with self._lock:
            self.mode = "stalled"
        self._flowing.clear()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._flowing.set()  # release every waiting thread

    @property
    def connections(self) -> int:
        with self._lock:
            return sum(1 for p in self._pairs if not p.dead.is_set())

    # -- plumbing -------------------------------------------------------------------------------

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 5
        while True:
            try:
                listener.bind((_LOOPBACK, port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    listener.close()
                    raise
                time.sleep(0.05)
        listener.listen(64)
        threading.Thread(target=self._accept, args=(listener,), name="fault-proxy-accept", daemon=True).start()
        return listener

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by cut() or close()
                return
            pair = _Pair(client)
            with self._lock:
                self._pairs = [p for p in self._pairs if not p.dead.is_set()]
                if self._listener is not listener or len(self._pairs) >= self.max_connections:
                    _reset(client)
                    continue
                self._pairs.append(pair)
            threading.Thread(target=self._connect, args=(pair,), name="fault-proxy-conn", daemon=True).start()

    def _wait_flowing(self, pair: _Pair) -> bool:
        """Block while stalled; False when the connection was reset meanwhile."""
        while not self._flowing.wait(0.05):
            if pair.dead.is_set():
                return False
        return not pair.dead.is_set()

    def _connect(self, pair: _Pair) -> None:
        if not self._wait_flowing(pair):
            return
        try:
            pair.upstream = socket.create_connection(self.target, timeout=5)
            pair.upstream.settimeout(None)
        except OSError:
            pair.reset()
            return
        if pair.dead.is_set():  # cut while connecting
            pair.reset()
            return
        threading.Thread(target=self._pump, args=(pair, pair.client, pair.upstream), daemon=True).start()
        self._pump(pair, pair.upstream, pair.client)

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not pair.dead.is_set():
                data = src.recv(65536)
                if not data or not self._wait_flowing(pair):
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if not pair.dead.is_set():
                pair.dead.set()
                for sock in (src, dst):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    sock.close()


def kill_hard(process: subprocess.Popen[Any], *, group: bool = False, timeout: float = 10) -> None:
    """kill -9 (the whole process group when it has its own), then reap it."""
    if process.poll() is not None:
        return
    if group:
        os.killpg(process.pid, signal.SIGKILL)
    else:
        process.kill()
    process.wait(timeout)


def kill_chroma(server: Any) -> None:
    """kill -9 a `tests.support.chroma_server.ChromaServer` (no clean shutdown); `server.start()` restarts
    it on the same port and path."""
    process, server.process = server.process, None
    if process is not None:
        kill_hard(process, group=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and server.heartbeat_ok():
        time.sleep(0.1)


def kill_bot(bot: Any) -> None:
    """kill -9 a `tests.support.slack.BotProcess` (no ack, no shutdown, nothing flushed)."""
    if bot.process is not None:
        kill_hard(bot.process)
