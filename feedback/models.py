"""The feedback schema (SQLModel tables): what the bot said, what people thought of it, and
which tuning was live when.

Rules the schema itself enforces, so that concurrent writers cannot break them:
- one current `Vote` per (answer, user) — a unique constraint, written by upsert;
- every raw vote action is also a `VoteEvent` row (nothing users do is ever lost);
- `TuningVersion.number` is unique and rows are never updated (versions are immutable);
- `ActiveVersion` has exactly one row (id 1) pointing at the live version (NULL = base index);
- `ProcessedEvent.event_id` is the primary key, so a retried Slack delivery is claimed once.
Schema changes go through Alembic migrations (feedback/migrations), never `create_all`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _when(**kwargs: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), **kwargs)


def _json(default: Any = dict) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


class Answer(SQLModel, table=True):
    __tablename__ = "answer"
    __table_args__ = (
        UniqueConstraint("channel", "message_ts", name="uq_answer_message"),
        Index("ix_answer_created_at", "created_at"),
        # follow-ups in a thread: "has any replica answered here?" (FeedbackStore.answered_in_thread)
        Index("ix_answer_channel_thread", "channel", "thread_ts"),
    )

    id: int | None = Field(default=None, primary_key=True)
    question: str
    asker: str = Field(max_length=200)
    origin: str = Field(max_length=40)  # "slack", "cli", "shell", "api", ...
    channel: str | None = Field(default=None, max_length=200)
    thread_ts: str | None = Field(default=None, max_length=64)  # root of the thread answered in
    message_ts: str | None = Field(default=None, max_length=64)  # the bot's reply, once posted
    created_at: datetime = _when()
    tuning_version: int | None = None
    abstained: bool = False
    answer_text: str = ""
    # The question's raw embedder vector (little-endian float16 bytes) and the model that made it
    # (`Embedder.model_id`), so learning reuses it instead of embedding the question again.
    question_vector: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    vector_model: str | None = Field(default=None, max_length=200)
    # A follow-up read with its thread: `question` is what retrieval searched (the follow-up fused
    # with the thread's topic), `asked` the words as written, `context_answer_id` the earlier
    # answer of the thread it was read with. NULL for a question searched as asked.
    asked: str | None = None
    context_answer_id: int | None = None


class ShownSource(SQLModel, table=True):
    """One document shown with an answer, with the scores that put it there."""

    __tablename__ = "shown_source"
    __table_args__ = (UniqueConstraint("answer_id", "rank", name="uq_shown_rank"),)

    id: int | None = Field(default=None, primary_key=True)
    answer_id: int = Field(foreign_key="answer.id", index=True, ondelete="CASCADE")
    rank: int
    doc_id: str = Field(max_length=500)
    chunk_id: str = Field(default="", max_length=500)
    title: str = ""
    source: str = ""
    score: float = 0.0
    base_score: float = 0.0


class Vote(SQLModel, table=True):
    """The current vote of one user on one answer (the raw history is in VoteEvent)."""

    __tablename__ = "vote"
    __table_args__ = (UniqueConstraint("answer_id", "user_id", name="uq_vote_answer_user"),)

    id: int | None = Field(default=None, primary_key=True)
    answer_id: int = Field(foreign_key="answer.id", index=True, ondelete="CASCADE")
    user_id: str = Field(max_length=200, index=True)
    value: int  # +1 or -1
    counted: bool = True
    weight: float = 1.0
    why: str = ""
    source: str = Field(default="cli", max_length=40)
    reason: str | None = None
    created_at: datetime = _when()
    updated_at: datetime = _when()


class VoteEvent(SQLModel, table=True):
    """Every raw vote action, counted or not, append-only: `value` 0 means "vote removed"."""

    __tablename__ = "vote_event"
    __table_args__ = (Index("ix_vote_event_user_at", "user_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    answer_id: int = Field(foreign_key="answer.id", index=True, ondelete="CASCADE")
    user_id: str = Field(max_length=200)
    value: int
    action: str = Field(max_length=20)  # cast | replace | remove
    counted: bool = False
    weight: float = 0.0
    why: str = ""
    source: str = Field(default="cli", max_length=40)
    reason: str | None = None
    at: datetime = _when()


class Correction(SQLModel, table=True):
    __tablename__ = "correction"

    id: int | None = Field(default=None, primary_key=True)
    answer_id: int = Field(foreign_key="answer.id", index=True, ondelete="CASCADE")
    user_id: str = Field(max_length=200)
    text: str | None = None
    source_ref: str | None = None  # a document id or a URL
    status: str = Field(default="pending", max_length=20, index=True)
    original_text: str | None = None  # what the user proposed, when a moderator edited it
    original_source_ref: str | None = None
    decided_by: str | None = Field(default=None, max_length=200)
    decided_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    note: str | None = None
    created_at: datetime = _when()
    # Provenance: how the suggestion came in ("slack_form", "slack_thread", "cli", ...) and, for a
    # reply suggested from a conversation, the link to that reply.
    origin: str | None = Field(default=None, max_length=40)
    permalink: str | None = Field(default=None, max_length=2000)


class Proposal(SQLModel, table=True):
    __tablename__ = "proposal"

    id: int | None = Field(default=None, primary_key=True)
    summary: str
    diff: dict = _json()
    payload: dict = _json()
    evaluation: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    status: str = Field(default="pending", max_length=20, index=True)
    created_by: str = Field(max_length=200)
    created_at: datetime = _when()
    decided_by: str | None = Field(default=None, max_length=200)
    decided_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    note: str | None = None
    override: bool = False
    applied_version: int | None = None


class TuningVersion(SQLModel, table=True):
    """Immutable: the store inserts these and never updates or deletes one."""

    __tablename__ = "tuning_version"

    id: int | None = Field(default=None, primary_key=True)
    number: int = Field(unique=True)
    payload: dict = _json()
    created_at: datetime = _when()
    created_by: str = Field(max_length=200)
    proposal_id: int | None = Field(default=None, foreign_key="proposal.id")
    note: str | None = None


class ActiveVersion(SQLModel, table=True):
    """The single-row pointer to the live TuningVersion; switching versions is one UPDATE."""

    __tablename__ = "active_version"

    id: int = Field(default=1, primary_key=True)
    number: int | None = None  # NULL: the base index, no tuning
    changed_at: datetime = _when()
    changed_by: str = Field(default="system", max_length=200)


class AuditEvent(SQLModel, table=True):
    """Who did what, when, to which object — append-only."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _when(index=True)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=60)
    object_type: str = Field(max_length=40)
    object_id: str = Field(max_length=200)
    before: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    note: str | None = None


class FlaggedUser(SQLModel, table=True):
    __tablename__ = "flagged_user"

    user_id: str = Field(primary_key=True, max_length=200)
    reason: str = ""
    flagged_by: str = Field(max_length=200)
    flagged_at: datetime = _when()


class GoldenQuestion(SQLModel, table=True):
    """A question with the documents that answer it: what the evaluation gate replays."""

    __tablename__ = "golden_question"

    id: int | None = Field(default=None, primary_key=True)
    question: str
    doc_ids: list = _json(list)
    added_by: str = Field(max_length=200)
    origin: str = Field(default="manual", max_length=40)
    correction_id: int | None = Field(default=None, foreign_key="correction.id")
    created_at: datetime = _when()


class ProcessedEvent(SQLModel, table=True):
    """Slack event ids already handled, so a retried delivery is processed once across replicas."""

    __tablename__ = "processed_event"

    event_id: str = Field(primary_key=True, max_length=200)
    at: datetime = _when()
