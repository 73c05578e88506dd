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
from tests.feedback_support import _admin_dsn

runner = CliRunner()


def test_migrations_ship_inside_the_package():
    assert (db.MIGRATIONS / "env.py").is_file() and (db.MIGRATIONS / "script.py.mako").is_file()
    assert list((db.MIGRATIONS / "versions").glob("*.py"))
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["feedback"]
    for needed in ("migrations/*.py", "migrations/versions/*.py", "migrations/*.mako"):
        assert needed in patterns


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
    with pytest.raises(OutdatedSchema, match="askloop db upgrade"):
        services.feedback
    with pytest.raises(OutdatedSchema):
        services.tuning()
    result = runner.invoke(app, ["stats"])
    assert result.exit_code == 1 and "askloop db upgrade" in result.output and "Traceback" not in result.output


def test_database_at_an_older_revision_is_refused_until_upgraded(settings, embedder):
    from bot.services import Services

    engine = db.make_engine(settings.effective_database_url)
    db.upgrade(engine, "0001")  # what an older askloop created
    assert db.head_revision() != "0001"
    with pytest.raises(OutdatedSchema, match=r"revision 0001, askloop needs .*askloop db upgrade"):
        Services(settings).feedback
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0 and f"0001 → {db.head_revision()}" in result.output
    assert Services(settings).feedback.check_schema() == db.head_revision()
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
    store = Services(settings).feedback
    assert store.check_schema() == db.head_revision()
    assert store.active_version() is None


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
    with pytest.raises(OutdatedSchema, match="askloop db upgrade"):
        Services(load_settings()).feedback
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["db", "check"]).exit_code == 0
    store = Services(load_settings()).feedback
    assert store.versions() == [] and store.active_version() is None
    db.downgrade(store.engine, "base")
    assert runner.invoke(app, ["db", "check"]).exit_code == 1
    store.close()


def test_unreachable_database_is_one_line(home, monkeypatch):
    monkeypatch.setenv("ASKLOOP_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1 and "could not upgrade" in result.output and "Traceback" not in result.output
