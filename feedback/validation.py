"""Which votes count for learning, and how much: the policy applied before feedback may teach.

A vote is always stored; the policy only decides `counted` and `weight`, and says why, so a
moderator can see what the learning engine will (and will not) use. The rules:
- a user flagged by a moderator counts zero;
- a user who already cast `max_votes_per_hour` counted votes in the last hour counts zero for
  the rest of that hour (a script or an angry colleague cannot swing the ranking);
- the asker's own vote weighs `asker_weight`, anyone else's `other_weight` (the asker knows
  whether the answer helped, but also has a stake in it: the team decides the balance).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VoteDecision:
    counted: bool
    weight: float
    why: str


@dataclass(frozen=True)
class VotePolicy:
    max_votes_per_hour: int = 30
    asker_weight: float = 1.0
    other_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.max_votes_per_hour < 0:
            raise ValueError("max_votes_per_hour must be 0 or more")
        if self.asker_weight < 0 or self.other_weight < 0:
            raise ValueError("vote weights must be 0 or more")

    def decide(
        self, *, voter: str, asker: str, flagged: bool, counted_last_hour: int
    ) -> VoteDecision:
        """`counted_last_hour`: the voter's counted votes in the hour before this one."""
        if flagged:
            return VoteDecision(False, 0.0, "voter is flagged by a moderator")
        if counted_last_hour >= self.max_votes_per_hour:
            return VoteDecision(
                False, 0.0, f"rate limit: more than {self.max_votes_per_hour} counted votes in an hour"
            )
        own = voter == asker
        weight = self.asker_weight if own else self.other_weight
        if weight <= 0:
            return VoteDecision(False, 0.0, "asker's own vote has weight 0" if own else "weight 0")
        return VoteDecision(True, weight, "asker's own vote" if own else "vote by another user")
