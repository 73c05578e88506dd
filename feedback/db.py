"""Database engines and schema migrations for the feedback store.

SQLite (the embedded default) is opened in WAL mode with a busy timeout and foreign keys on, and
every transaction starts with `BEGIN IMMEDIATE`: writers queue for the lock up front instead of
failing with "database is locked" when a read transaction tries to become a write. PostgreSQL
gets a connection pool with pre-ping, so a restarted server costs one reconnect, not an error.

Every wait on the database has a deadline (`EngineOptions`, which the interface layer builds
from its settings): connecting (`connect_timeout`), a statement on the server
(`statement_timeout`), a pooled connection (`pool_timeout`), a dead peer on an idle connection
(TCP keepalives) or on unacknowledged data (`tcp_user_timeout`), and — because a server or
network that accepts bytes and never answers defeats all of those — the client's own wait for
any reply (`reply_deadline`): past it the connection is closed and the call fails, so a stalled
database turns into errors the callers handle instead of threads that hang forever.

The schema is owned by Alembic (feedback/migrations, shipped inside the package); the app checks
the revision at start-up and refuses an outdated database instead of failing later mid-request.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url

from feedback.errors import OutdatedSchema

if TYPE_CHECKING:  # alembic is imported where a migration runs: answering only reads a revision
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True)
class EngineOptions:
    """How long the feedback store waits for its database, at most (seconds)."""

    connect_timeout: float = 5.0  # open a connection (PostgreSQL; libpq's minimum is 2)
    statement_timeout: float = 30.0  # one statement on the server (PostgreSQL)
    reply_grace: float = 5.0  # the client waits this much longer for any reply, then gives up
    pool_timeout: float = 5.0  # wait for a free pooled connection
    keepalive_idle: int = 30  # idle seconds before TCP keepalive probes start
    keepalive_interval: int = 10  # seconds between probes
    keepalive_count: int = 3  # unanswered probes before the connection is dead
    sqlite_busy_timeout: float = 30.0  # wait for SQLite's write lock

    @property
    def reply_deadline(self) -> float:
        return self.statement_timeout + self.reply_grace


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, options: EngineOptions | None = None, **kwargs: Any) -> Engine:
    """An engine configured for many concurrent writers on either backend, with bounded waits."""
    options = options or EngineOptions()
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": options.sqlite_busy_timeout, "check_same_thread": False},
            **kwargs,
        )
        _configure_sqlite(engine, options)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_recycle", 1800)
    kwargs.setdefault("pool_timeout", options.pool_timeout)
    engine = create_engine(url, connect_args=_postgres_connect_args(url, options), **kwargs)
    _bound_replies(engine, options)
    return engine


def _postgres_connect_args(url: str, options: EngineOptions) -> dict[str, Any]:
    server_options = f"-c statement_timeout={int(options.statement_timeout * 1000)}"
    given = make_url(url).query.get("options")  # e.g. a search_path set in the URL
    if given:
        server_options = f"{given if isinstance(given, str) else ' '.join(given)} {server_options}"
    return {
        "connect_timeout": max(2, math.ceil(options.connect_timeout)),
        "options": server_options,
        "keepalives": 1,
        "keepalives_idle": options.keepalive_idle,
        "keepalives_interval": options.keepalive_interval,
        "keepalives_count": options.keepalive_count,
        "tcp_user_timeout": int(options.reply_deadline * 1000),
    }


class BoundedConnection(psycopg.Connection):  # type: ignore[type-arg]
    """A psycopg connection whose every wait for the server has a deadline.

    psycopg waits for replies without a time limit unless the caller passes one to
    `Connection.wait`, which its cursors never do; the server's statement_timeout cannot help
    when the query never reaches the server (a stalled proxy or network), and keepalives
    cannot tell a stalled peer from a busy one while the kernel still acknowledges. So every
    wait gets `reply_deadline`; when it passes, the connection (now in an unknown protocol
    state) is closed and the call fails like a lost connection, which SQLAlchemy treats as a
    disconnect: the pooled connection is discarded and the next checkout opens a fresh one.
    """

    reply_deadline: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        try:
            return super().wait(gen, interval=interval, timeout=timeout if timeout is not None else self.reply_deadline)
        except psycopg.errors._WaitTimeout:  # psycopg's own "the deadline passed" (pinned version)
            self.close()
            raise psycopg.OperationalError(
                f"the database did not reply within {self.reply_deadline:g} s; the connection was closed"
            ) from None


def _bound_replies(engine: Engine, options: EngineOptions) -> None:
    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        connection = BoundedConnection.connect(*cargs, **cparams)
        connection.reply_deadline = options.reply_deadline
        return connection


def _configure_sqlite(engine: Engine, options: EngineOptions) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(options.sqlite_busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Readers (engine.execution_options(read_only=True)) take no lock: in WAL mode they never
        # block a writer and never need to upgrade to one.
        read_only = connection.get_execution_options().get("read_only", False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def alembic_config(engine: Engine | None = None) -> "Config":
    """Alembic configured from code, so it works from an installed package (no alembic.ini)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
        config.attributes["engine"] = engine
    return config


def _scripts() -> "ScriptDirectory":
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest migration's revision, read from the migration files' `revision` and
    `down_revision` assignments (importing alembic for it would cost every CLI call 0.3 s; a test
    holds this equal to alembic's own answer)."""
    named: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        values: dict[str, str | None] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target: ast.expr
            if isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                values[target.id] = ast.literal_eval(value)
        if "revision" in values:
            named[str(values["revision"])] = values.get("down_revision")
    heads = set(named) - {down for down in named.values() if down}
    assert len(heads) == 1, f"feedback/migrations must have one head, not {sorted(heads)}"
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: no askloop schema), read with one query instead of
    alembic's migration runtime, which costs a CLI call a quarter of a second to import."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        versions = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    if len(versions) > 1:
        raise OutdatedSchema(f"the feedback database has several schema heads ({', '.join(sorted(versions))})",
                             upgradable=False)
    return versions[0] if versions else None


@contextmanager
def _unbounded(connection: Connection) -> Iterator[None]:
    """Lift the statement timeout and the reply deadline for one transaction (a migration may
    rewrite a large table; it is run by an operator, not on a request's path)."""
    driver = connection.connection.driver_connection
    if not isinstance(driver, BoundedConnection):
        yield
        return
    connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
    deadline, driver.reply_deadline = driver.reply_deadline, None
    try:
        yield
    finally:
        driver.reply_deadline = deadline


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Run the migrations up to `revision`; returns (revision before, revision after)."""
    from alembic import command

    before = current_revision(engine)
    with engine.begin() as connection, _unbounded(connection):
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return before, current_revision(engine) or ""


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    with engine.begin() as connection, _unbounded(connection):
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def is_empty(engine: Engine) -> bool:
    """True for a brand-new database: no tables at all (safe to create the schema in)."""
    return not inspect(engine).get_table_names()


def check_schema(engine: Engine) -> str:
    """The current revision, or OutdatedSchema saying what is wrong."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return current
    where = engine.url.render_as_string(hide_password=True)
    if current is None:
        raise OutdatedSchema(f"the feedback database at {where} has no askloop schema yet")
    known = {rev.revision for rev in _scripts().walk_revisions()}
    if current not in known:
        raise OutdatedSchema(
            f"the feedback database at {where} is at revision {current}, which this version of "
            f"askloop does not know (newer?): upgrade askloop, or use another database", upgradable=False,
        )
    raise OutdatedSchema(f"the feedback database at {where} is at revision {current}, askloop needs {head}")
