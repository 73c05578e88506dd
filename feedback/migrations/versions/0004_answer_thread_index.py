"""ix_answer_channel_thread: find the answers posted in a Slack thread by (channel, thread_ts)

A follow-up in a thread is for the bot when the bot answered in that thread. With several
replicas, the one receiving the follow-up often did not answer; it now asks the feedback
database (`FeedbackStore.answered_in_thread`) instead of Slack's rate-limited
`conversations.replies`, and this index keeps that lookup from scanning every answer.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 14:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_answer_channel_thread"


def upgrade() -> None:
    # Plain CREATE/DROP INDEX on both backends, never a batch "copy and swap": on SQLite dropping
    # the old `answer` table would cascade-delete every vote, correction and shown source.
    op.create_index(INDEX, "answer", ["channel", "thread_ts"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="answer")
