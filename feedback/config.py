"""Everything the feedback loop can be told, in one typed object the interface layer builds.

`feedback` never reads the environment or the bot's settings: `bot` turns its settings into a
`LoopConfig` (see `bot.wiring`), tests and the evaluation harness build one directly. Every
field has the product's default, so `LoopConfig()` is a working configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from feedback.gaps import DEFAULT_DAYS, DEFAULT_SIMILARITY
from feedback.gate import GateConfig
from feedback.learning import LearningParams
from feedback.validation import VotePolicy


@dataclass(frozen=True)
class LoopConfig:
    top_k: int = 5  # sources shown with an answer
    answer_threshold: float = 0.35  # below it the bot abstains (and says so)
    policy: VotePolicy = field(default_factory=VotePolicy)  # which votes count, and how much
    gate: GateConfig = field(default_factory=GateConfig)  # what a proposal must pass
    learning: LearningParams = field(default_factory=LearningParams)  # the learning engine's knobs
    tuning_cache_seconds: float = 2.0  # how long the active version is trusted before re-reading
    moderators: frozenset[str] = frozenset()  # user ids that may decide, flag and roll back
    # The person at this terminal, who may moderate in their own shell (None: nobody by default).
    local_owner: str | None = None
    # Knowledge gaps (`feedback.gaps`): how alike two questions must be to count as one gap, and
    # how many days back the report looks.
    gap_similarity: float = DEFAULT_SIMILARITY
    gap_days: int = DEFAULT_DAYS

    def with_moderators(self, *users: str) -> "LoopConfig":
        from dataclasses import replace

        return replace(self, moderators=self.moderators | {u for u in users if u})
