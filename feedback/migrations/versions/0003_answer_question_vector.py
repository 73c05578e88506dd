"""answer.question_vector and answer.vector_model: the question's vector, kept from answer time

The bot embeds every question to answer it; keeping that vector (float16 bytes, with the model
that made it) lets the learning engine skip re-embedding every question it learns from. Both
columns are nullable: answers recorded before this revision simply have no vector.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("question_vector", "vector_model")


def upgrade() -> None:
    # Plain ALTER TABLE ADD/DROP COLUMN on both backends, never a batch "copy and swap": on SQLite
    # dropping the old `answer` table would cascade-delete every vote, correction and shown source.
    op.add_column("answer", sa.Column("question_vector", sa.LargeBinary(), nullable=True))
    op.add_column("answer", sa.Column("vector_model", sa.String(length=200), nullable=True))


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.drop_column("answer", column)
