"""Alembic environment: the database URL comes from the alembic config (see
``sapphire.migrations.config.alembic_config``) or from ``DATABASE_URL`` /
``SAPPHIRE_DATABASE_URL``; every run holds the migration lock (``lock.py``)."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from sapphire.migrations import config as migration_config
from sapphire.migrations import lock
from sapphire.trader_api.storage import tables

target_metadata = tables.Base.metadata


def _database_url() -> str:
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get(
        "SAPPHIRE_DATABASE_URL", os.environ.get("DATABASE_URL", "")
    )
    if not url:
        raise RuntimeError("no database URL: set DATABASE_URL (or SAPPHIRE_DATABASE_URL)")
    return migration_config.sync_url(url)


def _run(connection: Connection) -> None:
    timeout = float(
        context.config.attributes.get(
            "lock_timeout_seconds",
            os.environ.get("SAPPHIRE_MIGRATION_LOCK_TIMEOUT", migration_config.DEFAULT_LOCK_TIMEOUT_SECONDS),
        )
    )
    with lock.migration_lock(connection, timeout_seconds=timeout):
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given: Connection | None = context.config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    engine = create_engine(_database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
