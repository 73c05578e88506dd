"""Long work, shown as it happens: the first model load, learning, the evaluation's phases.

Three tools, all drawing on standard error so that `--json` output stays clean, and all silent
when standard error is not a terminal (logs and pipes get no spinner frames):

* `interruptible(work)`: run `work` on a worker thread and wait for it, so that Ctrl-C stops the
  wait at once and cleanly (a KeyboardInterrupt raised in the middle of importing torch leaves
  half-imported modules and "Exception ignored" noise); the abandoned work finishes on its own.
* `first_load(services, console)`: a spinner while the embedding model and the knowledge base
  load, once per process — the few seconds before the first answer.
* `Phases`: a spinner naming the current step of a long command, with its elapsed time, and a
  line per finished step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from bot.services import Services

T = TypeVar("T")
LOADING = "Loading the embedding model and the knowledge base (once per run, a few seconds)…"


def interruptible(work: Callable[[], T], *, status: str | None = None, console: Console | None = None) -> T:
    """`work()`, run on a daemon thread; Ctrl-C in the waiting thread raises KeyboardInterrupt at
    once. `status`: a spinner shown on `console` while waiting."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the waiting thread as it is
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="askloop-work", daemon=True)
    spinner = console.status(escape(status), spinner="dots") if status and console and console.is_terminal else nullcontext()
    with spinner:
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def first_load(services: "Services", console: Console) -> None:
    """Load the model and open the knowledge base, with a spinner, unless that is done already."""
    if not services.ready:
        interruptible(services.warm, status=LOADING, console=console)


class Phases:
    """Name each step of a long command while it runs, and say how long it took when it is done.

    `phases.step("evaluating")` starts a step (ending the one before); `phases.done()` ends the
    last one. On a terminal the running step is a spinner with its elapsed time; elsewhere each
    step is one line when it starts, so logs still show where time went.
    """

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self._status: Any = None
        self._name: str | None = None
        self._started = 0.0
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    def step(self, name: str) -> None:
        self._finish()
        if not self.enabled:
            return
        self._name, self._started = name, time.monotonic()
        if not self.console.is_terminal:
            self.console.print(f"[dim]{escape(name)}…[/]")
            return
        self._status = self.console.status(f"{escape(name)}…", spinner="dots")
        self._status.start()
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick, name="askloop-phase", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            status, name = self._status, self._name
            if status is not None and name:
                status.update(f"{escape(name)}… [dim]{time.monotonic() - self._started:.0f} s[/]")

    def _finish(self) -> None:
        if self._name is None:
            return
        seconds = time.monotonic() - self._started
        if self._status is not None:
            self._stop.set()
            if self._ticker is not None:
                self._ticker.join(2)
            self._status.stop()
            self._status = None
            self.console.print(f"[dim]{escape(self._name)}: {seconds:.1f} s[/]")
        self._name = None

    def done(self) -> None:
        self._finish()

    @contextmanager
    def running(self) -> Iterator["Phases"]:
        try:
            yield self
        finally:
            self._finish()


__all__ = ["LOADING", "Phases", "first_load", "interruptible"]
