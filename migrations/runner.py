"""``sapphire migrate``: what a MigrationRun pod runs (and what a person may run by hand).

It reads the revision the database is at, migrates under the advisory migration lock, reads
the revision again, and reports ``{"from", "to", "applied", "revisions"}`` as JSON to the
termination-message path. ``revisions`` is the lineage of ``to`` (every revision from base
up to it), which lets the operator release TradingAgents that wait for any of them. The
"from" revision is read while holding the lock, so a concurrent migration cannot make the
report lie. On failure the report carries ``error`` instead, the process exits non-zero, and
the database URL never appears in either (passwords are redacted).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from sapphire import config as sapphire_config
from sapphire.domain.migration import Direction
from sapphire.migrations import config, lock
from sapphire.migrations.report import MigrationReport


def lineage(script: ScriptDirectory, revision: str | None) -> list[str]:
    """``revision`` and all its ancestors, newest first; empty for the base."""
    if revision is None:
        return []
    return [r.revision for r in script.iterate_revisions(revision, "base") if r is not None]


def migrate(
    database_url: str,
    *,
    revision: str,
    direction: Direction = Direction.UPGRADE,
    lock_timeout_seconds: float = config.DEFAULT_LOCK_TIMEOUT_SECONDS,
) -> MigrationReport:
    """Move the database to ``revision``; raise on failure (the lock is always released)."""
    alembic_config = config.alembic_config(database_url, lock_timeout_seconds=lock_timeout_seconds)
    script = ScriptDirectory.from_config(alembic_config)
    engine = create_engine(config.sync_url(database_url), poolclass=pool.NullPool)
    try:
        with (
            engine.connect() as connection,
            lock.migration_lock(connection, timeout_seconds=lock_timeout_seconds),
        ):
            before = MigrationContext.configure(connection).get_current_revision()
            connection.commit()
            # env.py takes the (re-entrant) lock again on this same connection.
            alembic_config.attributes["connection"] = connection
            if direction is Direction.UPGRADE:
                command.upgrade(alembic_config, revision)
            else:
                command.downgrade(alembic_config, revision)
            connection.commit()
            after = MigrationContext.configure(connection).get_current_revision()
            connection.commit()
    finally:
        engine.dispose()
    old, new = lineage(script, before), lineage(script, after)
    applied = (
        [r for r in reversed(new) if r not in old]
        if direction is Direction.UPGRADE
        else [r for r in old if r not in new]
    )
    return MigrationReport(from_revision=before, to_revision=after, applied=applied, revisions=new)


def offline_sql(database_url: str, *, revision: str, direction: Direction = Direction.UPGRADE) -> None:
    """Print the SQL a migration would run, without touching the database (``--sql``)."""
    alembic_config = config.alembic_config(database_url)
    if direction is Direction.UPGRADE:
        command.upgrade(alembic_config, revision, sql=True)
    else:
        command.downgrade(alembic_config, revision, sql=True)


def write_report(path: Path | None, report: MigrationReport) -> None:
    """Write the report where the kubelet reads the termination message (raises OSError)."""
    if path is not None:
        path.write_text(report.to_json())


def redacted_error(error: BaseException, database_url: str) -> str:
    text = sapphire_config.redact_url(f"{type(error).__name__}: {error}")
    return text.replace(database_url, "<database-url>")
