"""Alembic environment for the platform database (registry and production log).

``modelops.stores.db.engine.upgrade`` passes an open connection (already inside a
transaction that holds the migration lock) in ``config.attributes["connection"]``; all
revisions then run in that one transaction. Run from the ``alembic`` command line,
it opens ``sqlalchemy.url`` itself, again in a single transaction.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from modelops.stores.db import orm  # noqa: F401  (every table joins Base.metadata)
from modelops.stores.db.engine import Base, registry_engine

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER via table copy
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the SQL as a script (``alembic upgrade head --sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = registry_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
