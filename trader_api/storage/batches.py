"""The connection a writer holds: the writer lock, and one transaction per batch on it.

Two kinds, one interface (:class:`BatchConnection`):

* :class:`PostgresBatches` holds a psycopg connection of its own. It takes the session
  advisory lock and sends each batch as one pipeline: ``BEGIN``, the fenced account update,
  one multi-row statement per table, ``COMMIT``, so a batch costs about one round trip
  and one fsync, and none of SQLAlchemy's per-statement work.
* :class:`CoreBatches` (SQLite, the embedded mode) runs :func:`journal.write` on an
  SQLAlchemy connection; a single process needs no lock.

Batches run on the lock-holding connection itself: if that connection is lost, so is
the lock, and no later batch of this writer can commit on it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Json
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sapphire.trader_api.core.records import Changes
from sapphire.trader_api.storage import journal


class BatchConnection(Protocol):
    async def try_lock(self) -> bool:
        """Take the writer lock if free; True when this connection holds it."""

    async def write(self, changes: Changes, *, epoch: int) -> None:
        """Commit one batch; FencedError (nothing committed) when ``epoch`` was replaced."""

    async def epoch(self) -> int:
        """The account's current fencing epoch."""

    async def close(self) -> None: ...


_DIALECT = postgresql_psycopg.dialect()  # type: ignore[no-untyped-call]


def _sql(statement: Any) -> str:
    """The statement as psycopg takes it (named ``%(column)s`` parameters), compiled once
    from the same table definitions SQLAlchemy uses, so the column lists live in one place."""
    return str(statement.compile(dialect=_DIALECT))


_SAVE_ACCOUNT = _sql(journal.SAVE_ACCOUNT)
_UPSERT_ORDERS = _sql(journal.upsert("postgresql", journal.ORDERS, ("id",)))
_INSERT_FILLS = _sql(journal.INSERT_FILLS)
_UPSERT_POSITIONS = _sql(journal.upsert("postgresql", journal.POSITIONS, ("symbol",)))
_UPSERT_BARS = _sql(journal.upsert("postgresql", journal.BARS, ("symbol", "interval", "start")))


def psycopg_url(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://`` (SQLAlchemy's form) as libpq takes it."""
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


class PostgresBatches:
    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection = connection

    @classmethod
    async def connect(cls, url: str) -> PostgresBatches:
        return cls(await psycopg.AsyncConnection.connect(psycopg_url(url), autocommit=True))

    async def try_lock(self) -> bool:
        cursor = await self.connection.execute("SELECT pg_try_advisory_lock(%s)", (journal.WRITER_LOCK_KEY,))
        row = await cursor.fetchone()
        return bool(row and row[0])

    async def epoch(self) -> int:
        cursor = await self.connection.execute(
            "SELECT writer_epoch FROM accounts WHERE id = %s", (journal.ACCOUNT_ID,)
        )
        row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def write(self, changes: Changes, *, epoch: int) -> None:
        account = changes.account
        if account is None:
            return
        rows = journal.batch_rows(changes)
        connection = self.connection
        async with connection.pipeline() as pipeline, connection.transaction():
            saved = connection.cursor()
            values = journal.account_values(changes, epoch=epoch)
            values["new_risk_limits"] = Json(values["new_risk_limits"])
            await saved.execute(_SAVE_ACCOUNT, values)
            async with connection.cursor() as cursor:
                for statement, params in (
                    (_UPSERT_ORDERS, rows.orders),
                    (_INSERT_FILLS, rows.fills),
                    (_UPSERT_POSITIONS, rows.positions),
                    (_UPSERT_BARS, rows.bars),
                ):
                    if params:
                        await cursor.executemany(statement, params)
            await pipeline.sync()  # the account update's row count, before COMMIT is sent
            if saved.rowcount != 1:
                raise journal.FencedError(
                    f"writer epoch {epoch} is no longer the account's: another writer took over"
                )

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()


class CoreBatches:
    def __init__(self, engine: AsyncEngine, connection: AsyncConnection, *, serialized: Any) -> None:
        self.engine, self.connection, self.serialized = engine, connection, serialized

    @classmethod
    async def connect(cls, engine: AsyncEngine, *, serialized: Any) -> CoreBatches:
        return cls(engine, await engine.connect(), serialized=serialized)

    async def try_lock(self) -> bool:
        return await journal.try_lock(self.connection)

    async def epoch(self) -> int:
        async with self.connection.begin():
            return await journal.current_epoch(self.connection)

    async def write(self, changes: Changes, *, epoch: int) -> None:
        async with self.serialized:
            await journal.write(self.connection, changes, epoch=epoch)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.invalidate()
        with contextlib.suppress(Exception):
            await self.connection.close()
