"""Alembic: the schema comes only from revisions, they go up and down on Postgres and
SQLite, the mappings match them, and concurrent runs are serialized by the lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from sapphire.migrations import config as migrations
from sapphire.migrations import lock
from sapphire.trader_api.storage import tables

TRADING_TABLES = {
    "accounts",
    "positions",
    "orders",
    "fills",
    "bars",
    "signals",
    "agents",
    "headlines",
    "equity_points",
}


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(migrations.sync_url(url))
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_and_downgrade_on_postgres(database_url: str) -> None:
    assert migrations.current(database_url) is None
    migrations.upgrade(database_url)
    assert migrations.current(database_url) == migrations.head()
    assert table_names(database_url) == TRADING_TABLES
    migrations.downgrade(database_url, "base")
    assert table_names(database_url) == set()
    migrations.upgrade(database_url)
    assert migrations.current(database_url) == migrations.head()


def test_upgrade_and_downgrade_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'embedded.db'}"
    migrations.upgrade(url)
    assert table_names(url) == TRADING_TABLES
    migrations.downgrade(url, "base")
    assert table_names(url) == set()


def test_the_mappings_match_the_migrated_schema(database_url: str) -> None:
    migrations.upgrade(database_url)
    engine = sa.create_engine(migrations.sync_url(database_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            assert compare_metadata(context, tables.Base.metadata) == []
    finally:
        engine.dispose()


def test_a_held_lock_makes_a_migration_give_up_with_a_clear_error(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock.LOCK_KEY,))
        with pytest.raises(
            lock.MigrationLockTimeoutError, match="another migration holds the migration lock"
        ):
            migrations.upgrade(database_url, lock_timeout_seconds=0.5)
    assert migrations.current(database_url) is None


def test_concurrent_upgrades_from_separate_processes_are_serialized(database_url: str) -> None:
    # Separate processes, like two pods or a pod and a laptop (alembic is not thread-safe).
    code = "import sys; from sapphire.migrations import config; config.upgrade(sys.argv[1])"
    runs = [
        subprocess.Popen([sys.executable, "-c", code, database_url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=90)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    assert migrations.current(database_url) == migrations.head()
    with psycopg.connect(database_url) as connection:
        held = connection.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()
    assert held == (0,)
