"""Database engines and schema migrations for the feedback store.

SQLite (the embedded default) is opened in WAL mode with a busy timeout and foreign keys on, and
every transaction starts with `BEGIN IMMEDIATE`: writers queue for the lock up front instead of
failing with "database is locked" when a read transaction tries to become a write. PostgreSQL
gets a connection pool with pre-ping, so a restarted server costs one reconnect, not an error.

The schema is owned by Alembic (feedback/migrations, shipped inside the package); the app checks
the revision at start-up and refuses an outdated database instead of failing later mid-request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url

from feedback.errors import OutdatedSchema

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for many concurrent writers on either backend."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_recycle", 1800)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Readers (engine.execution_options(read_only=True)) take no lock: in WAL mode they never
        # block a writer and never need to upgrade to one.
        read_only = connection.get_execution_options().get("read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic configured from code, so it works from an installed package (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
        config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "feedback/migrations has no revisions"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Run the migrations up to `revision`; returns (revision before, revision after)."""
    before = current_revision(engine)
    with engine.begin() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return before, current_revision(engine) or ""


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def is_empty(engine: Engine) -> bool:
    """True for a brand-new database: no tables at all (safe to create the schema in)."""
    return not inspect(engine).get_table_names()


def check_schema(engine: Engine) -> str:
    """The current revision, or OutdatedSchema saying what to run."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return current
    where = engine.url.render_as_string(hide_password=True)
    if current is None:
        raise OutdatedSchema(
            f"the feedback database at {where} has no askloop schema yet: run `askloop db upgrade`"
        )
    known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if current not in known:
        raise OutdatedSchema(
            f"the feedback database at {where} is at revision {current}, which this version of "
            f"askloop does not know (newer?); upgrade askloop or point ASKLOOP_DATABASE_URL elsewhere"
        )
    raise OutdatedSchema(
        f"the feedback database at {where} is at revision {current}, askloop needs {head}: "
        f"run `askloop db upgrade`"
    )
