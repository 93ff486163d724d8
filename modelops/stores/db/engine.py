"""Opening the platform database: the engine, the declarative base, the alembic upgrade.

SQLite by default, PostgreSQL in production. The schema is managed by alembic
(``modelops/stores/db/migrations``); opening a :class:`Database` upgrades it to the
latest revision, in one transaction that holds a database-wide lock, so two processes
opening the same database at once are safe. The registry and the production log are
two :class:`Database` subclasses on the same tables' metadata (:class:`Base`).
"""

from __future__ import annotations

import contextlib
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


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Run ``alembic upgrade <revision>`` on ``connection``, inside its open transaction.

    Takes a lock first (SQLite: the ``BEGIN IMMEDIATE`` write lock; PostgreSQL: an
    advisory transaction lock) so concurrent upgrades run one after the other; the
    second finds the database at head and does nothing.
    """
    with _UPGRADE_LOCK:
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def open_database(url: str, what: str) -> tuple[Engine, sessionmaker]:
    """Engine and session factory for the platform database at ``url``, migrated to
    head; one clear ModelopsError naming ``what`` and the (password-free) URL."""
    engine = registry_engine(url)
    try:
        with engine.begin() as connection:
            upgrade(connection)
    except (sa.exc.SQLAlchemyError, CommandError) as exc:
        engine.dispose()
        raise ModelopsError(
            f"cannot open {what} {masked_url(engine.url)}: {_first_line(exc)}"
        ) from None
    return engine, sessionmaker(engine, expire_on_commit=False)


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
        """Open (creating if needed) the database at ``url`` and migrate it to head."""
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
