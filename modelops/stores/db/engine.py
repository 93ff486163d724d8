"""Opening the platform database: the engine, the declarative base, the alembic upgrade.

SQLite by default, PostgreSQL in production. The schema is managed by alembic
(``modelops/stores/db/migrations``). Migrations run only in ``modelops init`` (and the
deployment's init job, which runs it), through :func:`migrate`: one transaction that
holds a database-wide lock, so two of them at once are safe. Every other process opens a
:class:`Database`, which checks that the schema is at this code's head revision and
refuses, naming ``modelops init``, when it is not (older, newer, empty or missing),
changing nothing; so whichever process first runs newer code cannot migrate production
on its own. The registry and the production log are two :class:`Database` subclasses on
the same tables' metadata (:class:`Base`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from modelops.config.errors import ModelopsError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
"""The alembic script directory, inside the package so it works when installed."""

# Stable key for PostgreSQL's advisory lock that serializes concurrent migrations.
_PG_MIGRATION_LOCK = 0x6D6F_6465_6C6F_7073 & 0x7FFF_FFFF_FFFF_FFFF
# Alembic keeps its running context in module globals: one upgrade per process at a time.
_UPGRADE_LOCK = threading.Lock()
# ``scheme://user:password@`` in a URL that SQLAlchemy cannot parse.
_PASSWORD = re.compile(r"(://[^/@:]*:)[^@/]*@")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """The declarative base of every table (:mod:`modelops.stores.db.orm`)."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON()}


# libpq and drivers also take credentials as query parameters (``?password=...``).
_SECRET_QUERY_KEYS = {"password", "passwd", "sslpassword", "token", "access_token"}


def masked_url(url: str | sa.URL) -> str:
    """``url`` as it may be shown: the password, if any, replaced by ``***`` (in the
    user part and in query parameters that carry credentials)."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # unparsable, or a port that is no number
        return _PASSWORD.sub(r"\1***@", str(url))
    secret = {k: "***" for k in parsed.query if k.lower() in _SECRET_QUERY_KEYS}
    shown = parsed.update_query_dict(secret).render_as_string(hide_password=True)
    return shown.replace("%2A%2A%2A", "***")


# The PostgreSQL drivers SQLAlchemy knows, by the module each needs.
_PG_DRIVERS = {"psycopg": "psycopg", "psycopg2": "psycopg2"}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def normalized_url(url: str | sa.URL, installed: Callable[[str], bool] = _installed) -> sa.URL:
    """``url`` parsed, with a PostgreSQL driver that is installed.

    SQLAlchemy 2 maps a bare ``postgresql://`` (and ``postgresql+psycopg://``) to psycopg 3;
    the Dagster family brings ``psycopg2-binary``. So ``postgres://``, ``postgresql://`` and
    ``postgresql+psycopg://`` use psycopg 3 when it is installed and psycopg2 otherwise;
    ``postgresql+psycopg2://`` stays as it is. Neither driver installed: a ModelopsError
    naming the packages to install. Other databases pass through unchanged.
    ``installed(module)`` says whether a driver module can be imported.
    """
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ModelopsError(f"invalid database URL {masked_url(url)!r}: {exc}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in ("postgres", "postgresql"):
        return parsed
    if driver and driver not in _PG_DRIVERS:  # asyncpg, pg8000...: the user's own choice
        return parsed.set(drivername=f"postgresql+{driver}")
    # Asked for psycopg2 by name: only that one. Else psycopg 3, then psycopg2.
    candidates = [driver] if driver == "psycopg2" else ["psycopg", "psycopg2"]
    for candidate in candidates:
        if installed(_PG_DRIVERS[candidate]):
            return parsed.set(drivername=f"postgresql+{candidate}")
    raise ModelopsError(
        f"cannot use database URL {masked_url(parsed)}: no PostgreSQL driver for "
        f"{parsed.drivername!r} is installed; install psycopg2-binary (postgresql+psycopg2://) "
        "or psycopg[binary] (postgresql+psycopg://)"
    )


def registry_engine(url: str) -> Engine:
    """An engine for the platform database.

    PostgreSQL URLs go through :func:`normalized_url` (any of ``postgres://``,
    ``postgresql://``, ``postgresql+psycopg://`` works with the installed driver).
    For SQLite: creates the parent directory of the file, turns on foreign keys, waits
    up to 30 s for locks, and makes every transaction ``BEGIN IMMEDIATE`` so that DDL
    is transactional and concurrent writers queue instead of failing.
    """
    parsed = normalized_url(url)
    if parsed.get_backend_name() != "sqlite":
        try:
            return sa.create_engine(parsed, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise ModelopsError(f"cannot use database URL {masked_url(parsed)}: {exc}") from None

    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        parent = Path(database).expanduser().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelopsError(f"cannot create the registry directory {parent}: {exc}") from None
    engine = sa.create_engine(parsed, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


INIT_COMMAND = "modelops init"
"""The one command that migrates the schema; refusals name it."""


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_alembic_config())


def head_revision() -> str:
    """The schema revision this code needs: the head of its migrations."""
    head = _scripts().get_current_head()
    assert head is not None, "the migrations have no head"
    return head


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Run ``alembic upgrade <revision>`` on ``connection``, inside its open transaction.
    Only :func:`migrate` (``modelops init``) and tests that build an old schema call it.

    Takes a lock first (SQLite: the ``BEGIN IMMEDIATE`` write lock; PostgreSQL: an
    advisory transaction lock) so concurrent upgrades run one after the other; the
    second finds the database at head and does nothing.
    """
    with _UPGRADE_LOCK:
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        command.upgrade(_alembic_config(connection), revision)


def migrate(url: str, revision: str = "head", what: str = "database") -> str:
    """Create or upgrade the schema of the platform database at ``url`` (``modelops
    init``, and tests that open a fresh database); the revision it is at now. One clear
    ModelopsError naming the (password-free) URL when it fails; nothing of a failed
    upgrade is kept (one transaction)."""
    engine = registry_engine(url)
    try:
        with engine.begin() as connection:
            upgrade(connection, revision)
            return MigrationContext.configure(connection).get_current_revision() or ""
    except (sa.exc.SQLAlchemyError, CommandError) as exc:
        raise ModelopsError(
            f"cannot open {what} {masked_url(engine.url)} to migrate it: {_first_line(exc)}"
        ) from None
    finally:
        engine.dispose()


def schema_problem(connection: Connection) -> str | None:
    """Why the schema behind ``connection`` is not the one this code needs, or None
    when it is at head. Reads ``alembic_version`` only."""
    current = MigrationContext.configure(connection).get_current_revision()
    head = head_revision()
    if current == head:
        return None
    if current is None:
        return f"it has no schema (this code needs revision {head}): run `{INIT_COMMAND}`"
    try:
        known = _scripts().get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        return (
            f"its schema is at revision {current}, which this release does not know (a "
            f"newer release migrated it; this one needs {head}): run the newer release, "
            f"or restore a backup; `{INIT_COMMAND}` of this release cannot go back"
        )
    return (
        f"its schema is at revision {current}, older than this code's {head}: run "
        f"`{INIT_COMMAND}` (with this release) to migrate it; no other command migrates"
    )


def open_database(url: str, what: str) -> tuple[Engine, sessionmaker]:
    """Engine and session factory for the platform database at ``url``, whose schema
    must be at head; else one clear ModelopsError naming ``what``, the (password-free)
    URL and ``modelops init``, with nothing created or changed (a missing SQLite file
    stays missing)."""
    parsed = normalized_url(url)
    if parsed.get_backend_name() == "sqlite" and not _sqlite_exists(parsed):
        raise ModelopsError(
            f"cannot open {what} {masked_url(parsed)}: there is no database file: "
            f"run `{INIT_COMMAND}` to create it"
        )
    engine = registry_engine(url)
    try:
        with engine.connect() as connection:
            problem = schema_problem(connection)
            connection.rollback()
    except (sa.exc.SQLAlchemyError, CommandError) as exc:
        engine.dispose()
        raise ModelopsError(
            f"cannot open {what} {masked_url(engine.url)}: {_first_line(exc)}"
        ) from None
    if problem is not None:
        engine.dispose()
        raise ModelopsError(f"cannot open {what} {masked_url(engine.url)}: {problem}")
    return engine, sessionmaker(engine, expire_on_commit=False)


def _sqlite_exists(parsed: sa.URL) -> bool:
    """Whether a SQLite URL names a database that exists (in-memory and ``file:`` URIs
    are taken as existing: SQLite decides)."""
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return True
    return Path(database).expanduser().exists()


def _first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip()
    return text.splitlines()[0] if text else type(inner).__name__


class Sessions:
    """The session factory of a :class:`Database`: ``with sessions.begin() as session``
    runs one transaction; a lost or unreachable database (``OperationalError``,
    ``InterfaceError``) becomes one clear ModelopsError naming what was opened and the
    password-free URL. The transaction was rolled back, so nothing of it is visible, and
    the pool checks connections before use (``pool_pre_ping``), so the next call
    reconnects. Writes are not retried: a commit whose answer was lost may have landed."""

    def __init__(self, factory: sessionmaker, what: str, url: sa.URL):
        self.factory = factory
        self.what = what
        self.url = url

    @contextlib.contextmanager
    def begin(self) -> Iterator[Session]:
        try:
            with self.factory.begin() as session:
                yield session
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise ModelopsError(
                f"{self.what} {masked_url(self.url)}: the database failed during a "
                f"transaction ({_first_line(exc)}); it was rolled back, nothing of it was "
                "stored; retry when the database is back"
            ) from None


class Database:
    """An open platform database: its engine and session factory, closed on exit.

    Each subclass method runs one transaction in its own session
    (``with self._session.begin() as session``).
    """

    what = "database"
    """What is opened, for error messages."""

    def __init__(self, url: str):
        """Open the database at ``url``, whose schema must be at head (``modelops
        init`` migrates it; :func:`migrate` in tests)."""
        self.url = url
        self._engine, factory = open_database(url, self.what)
        self._session = Sessions(factory, self.what, self._engine.url)

    def close(self) -> None:
        """Close the database connections."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
