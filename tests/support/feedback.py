"""Fixtures for the feedback tests: a migrated, empty FeedbackStore on SQLite and PostgreSQL.

PostgreSQL: one uniquely named database per test session (CREATE DATABASE, dropped at the end),
so several test processes on the same server never collide; tables are emptied before each
test. SQLite: one migrated template file per session, copied for each test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from retrieval.types import Hit
from tests.conftest import PG_URL

MODERATOR = "U_MOD"
TABLES = (
    "golden_question", "vote_event", "vote", "shown_source", "correction", "tuning_version",
    "proposal", "audit_event", "flagged_user", "processed_event", "answer", "active_version",
)


def _admin_dsn(url: str = PG_URL) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def pg_database_url(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards (skipped, with the
    reason, when no server answers)."""
    import psycopg

    name = f"askloop_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_admin_dsn(postgres_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_migrated_url(pg_database_url: str) -> str:
    from feedback import db

    engine = db.make_engine(pg_database_url)
    db.upgrade(engine)
    engine.dispose()
    return pg_database_url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from feedback import db

    path = tmp_path_factory.mktemp("feedback") / "template.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


def empty_postgres(url: str) -> None:
    from feedback import db

    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        conn.execute(text("INSERT INTO active_version (id, number, changed_at, changed_by) VALUES (1, NULL, now(), 'system')"))
    engine.dispose()


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated feedback database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "feedback.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_migrated_url")
    empty_postgres(url)
    return url


@pytest.fixture()
def store(store_url: str):
    from feedback.store import FeedbackStore

    instance = FeedbackStore(store_url)
    yield instance
    instance.close()


class NoKnowledgeBase:
    """For loop tests that never search: any use of the knowledge base is a test failure."""

    def __getattr__(self, name: str):
        raise AssertionError(f"this test must not use the knowledge base (.{name})")


@pytest.fixture()
def loop(store):
    """The feedback loop over `store`, with MODERATOR as the one moderator and no knowledge base."""
    from feedback.config import LoopConfig
    from feedback.loop import FeedbackLoop

    return FeedbackLoop(store, lambda: NoKnowledgeBase(), LoopConfig(moderators=frozenset({MODERATOR})))


def hits(*doc_ids: str) -> list[Hit]:
    return [
        Hit(doc_id=d, title=d.title(), source=f"{d}.md", score=0.9 - 0.1 * i, passage=f"about {d}",
            chunk_id=f"{d}#0", base_score=0.8 - 0.1 * i)
        for i, d in enumerate(doc_ids)
    ]


def answer(store, question: str = "how do I connect to the VPN?", asker: str = "U_ASKER", **kwargs):
    return store.answers.record(
        question=question, asker=asker, origin=kwargs.pop("origin", "slack"),
        hits=kwargs.pop("hits", hits("vpn", "laptop")), answer_text="Install WireGuard [1]",
        abstained=False, tuning_version=kwargs.pop("tuning_version", None), **kwargs,
    )
