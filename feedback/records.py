"""Plain value objects the store returns: detached from any database session, safe to keep.

They are frozen dataclasses; `record["field"]` works too, and `as_dict()` gives JSON-ready data
(datetimes as ISO 8601 strings), so interfaces can print or serialise them without the ORM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

import numpy as np


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class _Record:
    def __getitem__(self, name: str) -> Any:
        if name not in {f.name for f in fields(self)}:  # type: ignore[arg-type]
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)

    def as_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))  # type: ignore[call-overload]


@dataclass(frozen=True)
class ShownDoc(_Record):
    rank: int
    doc_id: str
    chunk_id: str
    title: str
    source: str
    score: float
    base_score: float


@dataclass(frozen=True)
class AnswerRecord(_Record):
    id: int
    question: str
    asker: str
    origin: str
    created_at: datetime
    tuning_version: int | None
    abstained: bool
    answer_text: str
    shown: list[ShownDoc] = field(default_factory=list)
    channel: str | None = None
    thread_ts: str | None = None
    message_ts: str | None = None
    # a follow-up read with its thread: `question` is what was searched, `asked` what was written
    asked: str | None = None
    context_answer_id: int | None = None

    @property
    def as_asked(self) -> str:
        """The question in the asker's own words."""
        return self.asked or self.question


VOTE_ACTIONS = ("cast", "replace", "remove", "none", "duplicate", "stale")


@dataclass(frozen=True)
class VoteResult(_Record):
    """What one vote action did.

    `action`: cast (a first vote), replace (changed or repeated an earlier one), remove (withdrawn),
    none (nothing to do: withdrawing a vote that is not there), duplicate (this delivery was
    already processed), stale (an older action than the user's last one arrived late: ignored).
    `value` is the user's vote in force afterwards (+1, -1, or 0 for none), `previous` before.
    """

    answer_id: int
    user: str
    action: str
    value: int
    previous: int
    counted: bool = False
    weight: float = 0.0
    why: str = ""

    @property
    def replaced(self) -> bool:
        return self.action == "replace"

    @property
    def changed(self) -> bool:
        return self.action in {"cast", "replace", "remove"}


@dataclass(frozen=True)
class VoteRecord(_Record):
    id: int
    answer_id: int
    user: str
    value: int
    counted: bool
    weight: float
    why: str
    source: str
    reason: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class CorrectionRecord(_Record):
    id: int
    answer_id: int
    user: str
    text: str | None
    source_ref: str | None
    status: str  # pending | approved | rejected
    created_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str | None = None
    original_text: str | None = None
    original_source_ref: str | None = None
    question: str = ""
    origin: str | None = None  # how it came in: slack_form, slack_thread, cli, ...
    permalink: str | None = None  # the reply it was suggested from, for one from a conversation

    @property
    def ref(self) -> str:
        return f"c{self.id}"


@dataclass(frozen=True)
class ProposalRecord(_Record):
    id: int
    summary: str
    diff: dict[str, Any]
    payload: dict[str, Any]
    evaluation: dict[str, Any] | None
    status: str  # pending | evaluated | failing | approved | rejected | applied
    created_by: str
    created_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str | None = None
    override: bool = False
    applied_version: int | None = None

    @property
    def ref(self) -> str:
        return f"p{self.id}"


@dataclass(frozen=True)
class VersionRecord(_Record):
    number: int
    payload: dict[str, Any]
    created_at: datetime
    created_by: str
    proposal_id: int | None
    note: str | None = None
    active: bool = False


@dataclass(frozen=True)
class AuditRecord(_Record):
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    note: str | None = None


@dataclass(frozen=True)
class GoldenQuestion(_Record):
    id: int
    question: str
    doc_ids: list[str]
    added_by: str
    origin: str
    correction_id: int | None
    created_at: datetime


@dataclass(frozen=True)
class TrainingVote(_Record):
    answer_id: int
    question: str
    asker: str
    user: str
    value: int
    weight: float
    shown: list[ShownDoc]
    at: datetime
    tuning_version: int | None = None
    # The raw embedder vector of the question, as the bot computed it when answering, and the
    # model that computed it (`Embedder.model_id`); None for answers recorded without one.
    question_vector: np.ndarray | None = field(default=None, compare=False, repr=False)
    vector_model: str | None = None


@dataclass(frozen=True)
class TrainingCorrection(_Record):
    correction_id: int
    answer_id: int
    question: str
    user: str
    doc_id: str | None  # a knowledge-base document the correction points to
    url: str | None  # or an outside URL
    text: str | None  # better answer text, if given
    at: datetime  # when it was approved
    shown: list[ShownDoc] = field(default_factory=list)
    question_vector: np.ndarray | None = field(default=None, compare=False, repr=False)  # as on TrainingVote
    vector_model: str | None = None


@dataclass(frozen=True)
class TrainingFeedback(_Record):
    votes: list[TrainingVote]
    corrections: list[TrainingCorrection]


@dataclass(frozen=True)
class GapSignal(_Record):
    """An answer that says the knowledge base lacks something (the rule is `feedback.gaps`'s):
    its question, who asked, the votes in force on it, and the vector it was searched with."""

    answer_id: int
    question: str
    asker: str
    asked_at: datetime
    abstained: bool
    up: int
    down: int
    question_vector: np.ndarray | None = field(default=None, compare=False, repr=False)
    vector_model: str | None = None


@dataclass(frozen=True)
class ReviewItem(_Record):
    ref: str  # c12 | p3
    kind: str  # correction | proposal
    id: int
    status: str
    summary: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class ReviewPage(_Record):
    items: list[ReviewItem]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class WindowStats(_Record):
    window: str  # 24h | 7d | 30d | all
    answers: int
    abstained: int
    up: int
    down: int

    @property
    def satisfaction(self) -> float | None:
        """Share of 👍 among votes; None when nobody voted."""
        total = self.up + self.down
        return self.up / total if total else None


@dataclass(frozen=True)
class StoreStats(_Record):
    windows: list[WindowStats]
    pending_corrections: int
    open_proposals: int
    active_version: int | None
    versions: int
    flagged_users: int
    golden_questions: int
