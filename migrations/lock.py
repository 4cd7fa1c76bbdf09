"""The migration lock: one migration at a time per database, even from a laptop.

The MigrationRun operator already runs one pod per database; this Postgres *session*
advisory lock is the second guard, held around every upgrade and downgrade. Waiting for it
is bounded by ``lock_timeout`` (and ``statement_timeout`` as a backstop), and a timeout
becomes :class:`MigrationLockTimeoutError` naming the cause. SQLite has no other writer
to fear in the embedded mode, so it takes no lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection

LOCK_KEY = 7_355_608_001
"""The advisory lock id every Sapphire migration takes (an arbitrary, fixed bigint)."""

_TIMEOUT_SQLSTATES = frozenset({"55P03", "57014"})  # lock_not_available, query_canceled


class MigrationLockTimeoutError(RuntimeError):
    """Another migration held the lock for longer than the timeout."""


@contextlib.contextmanager
def migration_lock(connection: Connection, *, timeout_seconds: float) -> Iterator[None]:
    """Hold the advisory lock on ``connection`` for the duration of the block."""
    if connection.dialect.name != "postgresql":
        yield
        return
    milliseconds = max(1, int(timeout_seconds * 1000))
    try:
        connection.execute(sa.text(f"SET lock_timeout = {milliseconds}"))
        connection.execute(sa.text(f"SET statement_timeout = {milliseconds + 1000}"))
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
    except sa.exc.DBAPIError as error:
        connection.rollback()
        if getattr(error.orig, "sqlstate", None) in _TIMEOUT_SQLSTATES:
            raise MigrationLockTimeoutError(
                f"another migration holds the migration lock (pg_advisory_lock {LOCK_KEY}); "
                f"gave up after {timeout_seconds}s"
            ) from None
        raise
    connection.execute(sa.text("RESET lock_timeout"))
    connection.execute(sa.text("RESET statement_timeout"))
    # Session-level locks survive commits; the migrations run in their own transactions.
    connection.commit()
    try:
        yield
    finally:
        if connection.in_transaction():
            connection.rollback()
        connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
        connection.commit()
