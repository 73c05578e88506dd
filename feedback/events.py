"""What the feedback loop reports as it works, for whoever counts (metrics, tests).

The loop calls these hooks after each use case has committed, so a refused or rolled-back
request is never counted. The loop knows nothing of Prometheus: the bot passes an object that
turns the calls into metrics (`bot` builds it), tests pass a recorder, and `NoEvents` ignores
everything. Hooks must be cheap and must not raise; the loop guards them anyway.
"""

from __future__ import annotations

from typing import Literal, Protocol

VoteKind = Literal["up", "down", "removed"]


class LoopEvents(Protocol):
    def answered(self, origin: str, abstained: bool) -> None:
        """An answer was recorded (abstentions included)."""

    def retrieved(self, seconds: float, failed: bool) -> None:
        """One retrieval (embed + search) took `seconds`; `failed`: the system failed (not the
        question, which is the asker's problem and never counts as a failure)."""

    def voted(self, kind: VoteKind, counted: bool | None, source: str) -> None:
        """A vote was cast, replaced or withdrawn (`counted` is None for a withdrawal)."""

    def corrected(self, source: str) -> None:
        """A correction was suggested."""


class NoEvents:
    """Ignores every report."""

    def answered(self, origin: str, abstained: bool) -> None:
        pass

    def retrieved(self, seconds: float, failed: bool) -> None:
        pass

    def voted(self, kind: VoteKind, counted: bool | None, source: str) -> None:
        pass

    def corrected(self, source: str) -> None:
        pass
