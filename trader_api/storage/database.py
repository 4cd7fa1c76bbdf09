"""Engine and sessions. Writes go through :meth:`Database.write`, one transaction each.

SQLite allows one writer at a time and fails (rather than waits) when two transactions
both try to upgrade a read lock, so in the embedded mode writes are also serialized by
an in-process lock. Postgres needs no such lock: row locks do the job across replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # The driver's own transaction handling never BEGINs before a SELECT, so two reads could
    # see two different states; we take over and BEGIN ourselves (_sqlite_begin), the recipe
    # SQLAlchemy documents for pysqlite and aiosqlite.
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
        if not self.is_sqlite:
            options.update(pool_size=10, max_overflow=10, pool_timeout=5)
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session whose reads all see one snapshot, so a view of the account and its
        positions never straddles a fill (READ COMMITTED would give each SELECT its own)."""
        async with self.sessions() as session:
            if not self.is_sqlite:
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield session

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction that commits when the block ends, or rolls back."""
        async with contextlib.AsyncExitStack() as stack:
            if self.is_sqlite:
                await stack.enter_async_context(self._write_lock)
            session = await stack.enter_async_context(self.sessions())
            await stack.enter_async_context(session.begin())
            yield session

    def serialized(self) -> contextlib.AbstractAsyncContextManager[object]:
        """Held around a write on a connection of one's own: SQLite's writes take turns in
        this process; Postgres needs nothing."""
        if self.is_sqlite:
            return self._write_lock
        return contextlib.nullcontext()

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
