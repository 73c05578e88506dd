"""Blocking checks (a database query, a Chroma call) run from the event loop with a deadline.

`/healthz` and the database-backed gauges must answer in bounded time whatever the services
do: a stalled database must not hold a request, nor the event loop, nor pile up threads. Each
`Probe` runs its check on a thread of its own, at most one at a time: while an earlier run is
still stuck, callers wait for that same run (up to their own deadline) instead of starting
another, so a stalled service costs one thread per probe, not one per request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class ProbeTimeout(TimeoutError):
    """The check did not finish within its deadline (it keeps running in its thread)."""


class Probe(Generic[T]):
    def __init__(self, name: str, check: Callable[[], T]) -> None:
        self.name = name
        self._check = check
        self._lock = threading.Lock()
        self._running: Future[T] | None = None

    def _start(self) -> Future[T]:
        with self._lock:
            if self._running is not None and not self._running.done():
                return self._running
            future: Future[T] = Future()
            self._running = future

        def run() -> None:
            try:
                result = self._check()
            except BaseException as exc:  # handed to the waiting caller
                future.set_exception(exc)
            else:
                future.set_result(result)

        threading.Thread(target=run, name=f"askloop-probe-{self.name}", daemon=True).start()
        return future

    @property
    def busy(self) -> bool:
        """An earlier run has not returned yet (the service it talks to may be stalled)."""
        running = self._running
        return running is not None and not running.done()

    async def run(self, deadline: float) -> T:
        """The check's result, its exception, or ProbeTimeout after `deadline` seconds."""
        future = asyncio.wrap_future(self._start())
        # A run that outlives its caller still ends; its outcome is read here so asyncio does
        # not report an exception "never retrieved".
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            return await asyncio.wait_for(asyncio.shield(future), deadline)
        except asyncio.TimeoutError:
            raise ProbeTimeout(f"{self.name} did not answer within {deadline:g}s") from None
