"""answer.asked, answer.context_answer_id; correction.origin, correction.permalink

A follow-up asked in a Slack thread is searched with the thread's topic ("how long is it
valid?" after "how do I connect to the VPN?"). The answer records what retrieval searched in
`question` (so feedback on it teaches the question really answered), the words as written in
`asked`, and the earlier answer it was read with in `context_answer_id`. A correction records
how it came in (`origin`: the form, a reply in the thread, the CLI) and, for a reply suggested
from a thread, a link to it (`permalink`), so moderators see where a suggestion came from.
Every column is nullable: rows written before this revision simply have none.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ANSWER_COLUMNS = ("asked", "context_answer_id")
CORRECTION_COLUMNS = ("origin", "permalink")


def upgrade() -> None:
    # Plain ALTER TABLE ADD/DROP COLUMN on both backends, never a batch "copy and swap": on SQLite
    # dropping the old `answer` table would cascade-delete every vote, correction and shown source.
    op.add_column("answer", sa.Column("asked", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column("answer", sa.Column("context_answer_id", sa.Integer(), nullable=True))
    op.add_column("correction", sa.Column("origin", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
    op.add_column("correction", sa.Column("permalink", sqlmodel.sql.sqltypes.AutoString(length=2000),
                                          nullable=True))


def downgrade() -> None:
    for column in reversed(CORRECTION_COLUMNS):
        op.drop_column("correction", column)
    for column in reversed(ANSWER_COLUMNS):
        op.drop_column("answer", column)
