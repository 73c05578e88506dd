"""Schema management: `askloop db upgrade` creates it, outdated databases are refused."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from bot.cli import app
from feedback import db
from feedback.errors import OutdatedSchema
from tests.support.feedback import _admin_dsn

runner = CliRunner()


def test_migrations_ship_inside_the_package():
    assert (db.MIGRATIONS / "env.py").is_file() and (db.MIGRATIONS / "script.py.mako").is_file()
    assert list((db.MIGRATIONS / "versions").glob("*.py"))
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["feedback"]
    for needed in ("migrations/*.py", "migrations/versions/*.py", "migrations/*.mako"):
        assert needed in patterns


def test_head_revision_agrees_with_alembic():
    from alembic.script import ScriptDirectory

    assert db.head_revision() == ScriptDirectory.from_config(db.alembic_config()).get_current_head()


def test_current_revision_reads_the_version_table_and_refuses_two_heads(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'f.db'}")
    assert db.current_revision(engine) is None
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0001')"))
    with pytest.raises(OutdatedSchema, match="several schema heads") as raised:
        db.current_revision(engine)
    assert not raised.value.upgradable


def test_answering_imports_no_migration_machinery(tmp_path):
    """A CLI call that only checks the schema must not pay for alembic's import."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'f.db'}"
    db.upgrade(db.make_engine(url))
    code = ("import sys; from feedback import db; "
            f"print(db.check_schema(db.make_engine({url!r}))); print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [db.head_revision(), "False"]


def test_sqlite_engine_uses_wal_and_foreign_keys(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'f.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    engine.dispose()


def test_cli_db_upgrade_and_check_on_sqlite(home):
    result = runner.invoke(app, ["db", "check"])
    assert result.exit_code == 1 and "askloop db upgrade" in result.output
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "upgraded: empty → " + db.head_revision() in result.output
    assert runner.invoke(app, ["db", "upgrade"]).output.strip().endswith(f"is up to date (revision {db.head_revision()})")
    result = runner.invoke(app, ["db", "check"])
    assert result.exit_code == 0 and "current" in result.output


def test_outdated_sqlite_database_is_refused_by_services(settings, embedder):
    from bot.services import Services

    engine = db.make_engine(settings.effective_database_url)
    db.upgrade(engine)
    db.downgrade(engine, "base")  # an existing database whose schema is behind
    engine.dispose()
    services = Services(settings)
    with pytest.raises(OutdatedSchema, match="has no askloop schema yet") as refused:
        services.feedback_store
    assert refused.value.upgradable and "askloop db" not in str(refused.value)  # the CLI adds how
    with pytest.raises(OutdatedSchema):
        services.loop
    result = runner.invoke(app, ["stats"])
    assert result.exit_code == 1 and "askloop db upgrade" in result.output and "Traceback" not in result.output


def test_database_at_an_older_revision_is_refused_until_upgraded(settings, embedder):
    from bot.services import Services

    engine = db.make_engine(settings.effective_database_url)
    db.upgrade(engine, "0001")  # what an older askloop created
    assert db.head_revision() != "0001"
    with pytest.raises(OutdatedSchema, match=r"revision 0001, askloop needs "):
        Services(settings).feedback_store
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0 and f"0001 → {db.head_revision()}" in result.output
    assert Services(settings).feedback_store.check_schema() == db.head_revision()
    engine.dispose()


def test_unknown_revision_is_refused(settings):
    engine = db.make_engine(settings.effective_database_url)
    db.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    with pytest.raises(OutdatedSchema, match="does not know"):
        db.check_schema(engine)
    engine.dispose()


def test_new_embedded_database_is_created_on_first_use(settings):
    from bot.services import Services

    assert not settings.sqlite_path.exists()
    store = Services(settings).feedback_store
    assert store.check_schema() == db.head_revision()
    assert store.proposals.active_version() is None


@pytest.fixture()
def fresh_pg_url(postgres_url):
    """An empty database of this test's own on the PostgreSQL server."""
    import psycopg

    name = f"askloop_schema_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_dsn(postgres_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{postgres_url.rpartition('/')[0]}/{name}"
    with psycopg.connect(_admin_dsn(postgres_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_postgres_upgrade_check_and_refusal(home, fresh_pg_url, monkeypatch):
    from bot.services import Services
    from bot.settings import load_settings

    monkeypatch.setenv("ASKLOOP_DATABASE_URL", fresh_pg_url)
    # a server database is never created implicitly: the app refuses and says what to run
    with pytest.raises(OutdatedSchema, match="no askloop schema yet"):
        Services(load_settings()).feedback_store
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["db", "check"]).exit_code == 0
    store = Services(load_settings()).feedback_store
    assert store.proposals.versions() == [] and store.proposals.active_version() is None
    db.downgrade(store.engine, "base")
    assert runner.invoke(app, ["db", "check"]).exit_code == 1
    store.close()


def test_unreachable_database_is_one_line(home, monkeypatch):
    monkeypatch.setenv("ASKLOOP_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1 and "could not upgrade" in result.output and "Traceback" not in result.output


# -- the models and the migrations describe the same schema ---------------------------------------
def check_models_match_migrations(url: str) -> None:
    """A column, constraint or index declared in feedback/models.py but not migrated (or the
    reverse) shows up here, instead of as a slow query or a failed write in production."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import feedback.models  # noqa: F401  (registers the tables)

    engine = db.make_engine(url)
    db.upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
    engine.dispose()


def test_models_match_migrations_on_sqlite(tmp_path):
    check_models_match_migrations(f"sqlite:///{tmp_path / 'compare.db'}")


@pytest.mark.postgres
def test_models_match_migrations_on_postgres(fresh_pg_url):
    check_models_match_migrations(fresh_pg_url)


# -- 0003: question vectors on answers -------------------------------------------------------------
def _columns(engine) -> set[str]:
    from sqlalchemy import inspect

    return {c["name"] for c in inspect(engine).get_columns("answer")}


def _count(engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()


def _old_source_and_vote(conn) -> None:
    """A shown source and a 👍 for every answer, written in SQL as an older schema had them (the
    models describe the newest schema), so a migration test can check that none is lost."""
    conn.execute(text(
        "INSERT INTO shown_source (answer_id, rank, doc_id, chunk_id, title, source, score, base_score) "
        "SELECT id, 1, 'vpn', 'vpn#0', 'VPN', 'vpn.md', 0.8, 0.8 FROM answer"))
    conn.execute(text(
        "INSERT INTO vote (answer_id, user_id, value, counted, weight, why, source, created_at, updated_at) "
        "SELECT id, 'U1', 1, TRUE, 1.0, '', 'slack', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM answer"))


def check_question_vector_migration(url: str) -> None:
    """0002 → head keeps old answers (without a vector), stores new ones with theirs; head → 0002
    drops only the two columns (no vote, correction or shown source lost) and keeps 0002's guards."""
    import numpy as np
    from sqlalchemy.exc import DatabaseError

    from feedback.store import FeedbackStore
    from retrieval.types import Hit

    engine = db.make_engine(url)
    db.upgrade(engine, "0002")
    assert not {"question_vector", "vector_model"} & _columns(engine)
    with engine.begin() as conn:  # what an askloop at 0002 had written
        conn.execute(text(
            "INSERT INTO answer (question, asker, origin, created_at, abstained, answer_text) "
            "VALUES ('old question?', 'UA', 'slack', CURRENT_TIMESTAMP, FALSE, 'old answer')"))
        _old_source_and_vote(conn)
        conn.execute(text(
            "INSERT INTO audit_event (at, actor, action, object_type, object_id) "
            "VALUES (CURRENT_TIMESTAMP, 'U1', 'vote.cast', 'answer', '1')"))

    db.upgrade(engine)
    assert {"question_vector", "vector_model"} <= _columns(engine)
    store = FeedbackStore(url)
    vector = np.linspace(-1, 1, 16, dtype=np.float32)
    new = store.answers.record(question="new question?", asker="UA", origin="slack",
                              hits=[Hit("vpn", "VPN", "vpn.md", 0.8, "x", "vpn#0", base_score=0.8)],
                              answer_text="a", abstained=False, tuning_version=None,
                              question_vector=vector, vector_model="m@16")
    store.votes.cast(new.id, "U2", 1)
    old_vote, new_vote = store.training.feedback().votes
    assert old_vote.question == "old question?" and old_vote.question_vector is None
    np.testing.assert_allclose(new_vote.question_vector, vector, atol=1e-3)
    store.close()

    db.downgrade(engine, "0002")
    assert not {"question_vector", "vector_model"} & _columns(engine)
    assert (_count(engine, "answer"), _count(engine, "vote"), _count(engine, "shown_source")) == (2, 2, 2)
    with pytest.raises(DatabaseError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_event SET actor = 'someone else'"))
    db.upgrade(engine)
    assert db.check_schema(engine) == db.head_revision()
    engine.dispose()


def test_question_vector_migration_up_and_down_on_sqlite(tmp_path):
    check_question_vector_migration(f"sqlite:///{tmp_path / 'migrate.db'}")


@pytest.mark.postgres
def test_question_vector_migration_up_and_down_on_postgres(fresh_pg_url):
    check_question_vector_migration(fresh_pg_url)


# -- 0004: answers found by their thread -----------------------------------------------------------
THREAD_INDEX = "ix_answer_channel_thread"
THREAD_LOOKUP = ("SELECT id FROM answer WHERE channel = 'C1' AND thread_ts = '100.000001' "
                 "AND message_ts IS NOT NULL")


def _answer_indexes(engine) -> dict[str, list[str]]:
    from sqlalchemy import inspect

    return {i["name"]: i["column_names"] for i in inspect(engine).get_indexes("answer")}


def _lookup_plan(engine) -> str:
    """How the database runs `answered_in_thread`'s query (sequential scans discouraged on
    PostgreSQL, whose planner would rightly scan a table this small)."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(text("EXPLAIN QUERY PLAN " + THREAD_LOOKUP)).all()
            return " ".join(str(r[-1]) for r in rows)
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        return " ".join(r[0] for r in conn.execute(text("EXPLAIN " + THREAD_LOOKUP)).all())


def check_thread_index_migration(url: str) -> None:
    """0003 → head adds the (channel, thread_ts) index the thread lookup uses, keeping every row;
    head → 0003 drops only the index (no answer, vote or shown source lost)."""
    from feedback.store import FeedbackStore

    engine = db.make_engine(url)
    db.upgrade(engine, "0003")
    assert THREAD_INDEX not in _answer_indexes(engine)
    with engine.begin() as conn:  # an answer posted in a thread by an askloop at 0003
        conn.execute(text(
            "INSERT INTO answer (question, asker, origin, channel, thread_ts, message_ts, created_at, "
            "abstained, answer_text) VALUES ('old question?', 'UA', 'slack_mention', 'C1', "
            "'100.000001', '100.000002', CURRENT_TIMESTAMP, FALSE, 'old answer')"))
        _old_source_and_vote(conn)

    db.upgrade(engine)
    assert _answer_indexes(engine)[THREAD_INDEX] == ["channel", "thread_ts"]
    assert THREAD_INDEX in _lookup_plan(engine)
    store = FeedbackStore(url)
    assert store.answers.answered_in_thread("C1", "100.000001") is True  # answered before the upgrade
    assert store.answers.answered_in_thread("C1", "100.000002") is False
    store.close()

    db.downgrade(engine, "0003")
    assert THREAD_INDEX not in _answer_indexes(engine)
    assert (_count(engine, "answer"), _count(engine, "vote"), _count(engine, "shown_source")) == (1, 1, 1)
    db.upgrade(engine)
    assert db.check_schema(engine) == db.head_revision()
    engine.dispose()


def test_thread_index_migration_up_and_down_on_sqlite(tmp_path):
    check_thread_index_migration(f"sqlite:///{tmp_path / 'migrate.db'}")


@pytest.mark.postgres
def test_thread_index_migration_up_and_down_on_postgres(fresh_pg_url):
    check_thread_index_migration(fresh_pg_url)


# -- 0005: follow-ups as searched and as asked; corrections' provenance --------------------------
def _columns_of(engine, table: str) -> set[str]:
    from sqlalchemy import inspect

    return {c["name"] for c in inspect(engine).get_columns(table)}


def check_conversation_migration(url: str) -> None:
    """0004 → head adds answer.asked/context_answer_id and correction.origin/permalink (empty on
    old rows); head → 0004 drops only those columns (no answer, vote, correction lost)."""
    from feedback.store import FeedbackStore
    from retrieval.types import Hit

    engine = db.make_engine(url)
    db.upgrade(engine, "0004")
    assert not {"asked", "context_answer_id"} & _columns_of(engine, "answer")
    with engine.begin() as conn:  # an answer and a correction written by an askloop at 0004
        conn.execute(text(
            "INSERT INTO answer (question, asker, origin, channel, thread_ts, message_ts, created_at, "
            "abstained, answer_text) VALUES ('old question?', 'UA', 'slack_mention', 'C1', "
            "'100.000001', '100.000002', CURRENT_TIMESTAMP, FALSE, 'old answer')"))
        _old_source_and_vote(conn)
        conn.execute(text(
            "INSERT INTO correction (answer_id, user_id, text, status, created_at) "
            "SELECT id, 'U2', 'better', 'pending', CURRENT_TIMESTAMP FROM answer"))

    db.upgrade(engine)
    assert {"asked", "context_answer_id"} <= _columns_of(engine, "answer")
    assert {"origin", "permalink"} <= _columns_of(engine, "correction")
    store = FeedbackStore(url)
    (old,) = store.answers.in_thread("C1", "100.000001")
    assert (old.asked, old.context_answer_id, old.as_asked) == (None, None, "old question?")
    (old_correction,) = store.corrections.find()
    assert (old_correction.origin, old_correction.permalink) == (None, None)
    follow_up = store.answers.record(question="old question? and then?", asked="and then?", context_answer_id=old.id,
                                     asker="UA", origin="slack_thread", hits=[Hit("vpn", "VPN", "vpn.md", 0.8, "x")],
                                     answer_text="a", abstained=False, tuning_version=None, channel="C1",
                                     thread_ts="100.000001")
    assert (follow_up.asked, follow_up.context_answer_id) == ("and then?", old.id)
    store.corrections.suggest(follow_up.id, "U3", text="t", origin="slack_thread", permalink="https://x.test/p1")
    store.close()

    db.downgrade(engine, "0004")
    assert not {"asked", "context_answer_id"} & _columns_of(engine, "answer")
    assert not {"origin", "permalink"} & _columns_of(engine, "correction")
    assert (_count(engine, "answer"), _count(engine, "vote"), _count(engine, "correction")) == (2, 1, 2)
    db.upgrade(engine)
    assert db.check_schema(engine) == db.head_revision()
    engine.dispose()


def test_conversation_migration_up_and_down_on_sqlite(tmp_path):
    check_conversation_migration(f"sqlite:///{tmp_path / 'migrate.db'}")


@pytest.mark.postgres
def test_conversation_migration_up_and_down_on_postgres(fresh_pg_url):
    check_conversation_migration(fresh_pg_url)
