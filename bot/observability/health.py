"""`/healthz`: "ok" or "degraded" within a deadline, whatever state the services are in.

A load balancer or Docker calls it every few seconds, often unauthenticated, so:
- it answers within `deadline` seconds even while the database or Chroma stalls: each check
  runs as a `Probe` (its own thread, one run at a time), and a late check counts as failed;
- the public body is only `{"status": "ok"}` or `{"status": "degraded"}`: which check failed
  and why (hosts, ports, exception text) goes to the log, never to whoever asked;
- only a failing *required* check makes it 503 (the feedback database: without it no vote can
  be kept). An optional one (the knowledge base) makes it "degraded" with 200, so a Chroma
  outage does not take every replica out of the load balancer while votes still work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.observability.probes import Probe

log = logging.getLogger("askloop.health")


@dataclass(frozen=True)
class HealthCheck:
    """A named blocking check: returns when the service answers, raises when it does not."""

    name: str
    check: Callable[[], object]
    required: bool = True


@dataclass
class HealthReport:
    failed: dict[str, str] = field(default_factory=dict)  # check name -> why (for the log only)
    required_failed: bool = False

    @property
    def status(self) -> str:
        return "degraded" if self.failed else "ok"

    @property
    def http_status(self) -> int:
        return 503 if self.required_failed else 200

    def public(self) -> dict[str, str]:
        return {"status": self.status}


class Health:
    """Runs every check concurrently, each bounded by `deadline`; logs what went wrong."""

    def __init__(self, checks: Sequence[HealthCheck], deadline: float = 1.5) -> None:
        self.checks = list(checks)
        self.deadline = deadline
        self._probes = {c.name: Probe(c.name, c.check) for c in self.checks}
        self._last_status: str | None = None

    async def report(self) -> HealthReport:
        start = time.monotonic()
        outcomes = await asyncio.gather(*(self._run(c) for c in self.checks))
        report = HealthReport()
        for check, problem in zip(self.checks, outcomes):
            if problem is not None:
                report.failed[check.name] = problem
                report.required_failed = report.required_failed or check.required
        self._log(report, time.monotonic() - start)
        return report

    async def _run(self, check: HealthCheck) -> str | None:
        try:
            await self._probes[check.name].run(self.deadline)
        except Exception as exc:
            text = str(exc).splitlines()[0][:300] if str(exc) else ""
            return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__
        return None

    def _log(self, report: HealthReport, elapsed: float) -> None:
        """A WARNING when the state turns degraded (and while it stays so, at DEBUG), INFO when
        it recovers: the details an operator needs, without one line per probe forever."""
        previous, self._last_status = self._last_status, report.status
        changed = report.status != previous
        if report.failed:
            level = logging.WARNING if changed else logging.DEBUG
            log.log(level, "health: degraded (%s)", "; ".join(f"{k}: {v}" for k, v in report.failed.items()),
                    extra={"failed": ",".join(report.failed), "elapsed_ms": round(elapsed * 1000, 1)})
        elif changed and previous is not None:
            log.info("health: ok again")
