"""The connection a writer holds: the writer lock, and one transaction per batch on it.

Two kinds, one interface (:class:`BatchConnection`):

* :class:`PostgresBatches` holds a psycopg connection of its own. It takes the session
  advisory lock and sends each batch as **one statement** in autocommit
  (:data:`BATCH_STATEMENT`): the fenced account update and the upserts of orders,
  positions and bars and the insert of fills, as data-modifying CTEs whose rows come from
  JSON parameters (``jsonb_populate_recordset``). One round trip, one implicit
  transaction, one fsync; the Python side encodes five JSON documents (msgspec, in C) and
  nothing per row, which is what a batch cost before (a pipeline of psycopg statements
  cost about 1 ms of the API's CPU). The statement text never changes, so psycopg
  prepares it once; its placeholders are the server's own (``$1``, a raw cursor), since
  psycopg caches the conversion of ``%(name)s`` only for statements under 4 kB and would
  parse this one again for every batch.
* :class:`CoreBatches` (SQLite, the embedded mode) runs :func:`journal.write` on an
  SQLAlchemy connection; a single process needs no lock.

Batches run on the lock-holding connection itself: if that connection is lost, so is
the lock, and no later batch of this writer can commit on it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

import msgspec
import psycopg
import sqlalchemy as sa
from psycopg import sql
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


PARAMETERS = ("account_id", "epoch", "account", "orders", "fills", "positions", "bars", "equity_points")
"""The batch statement's parameters, in the order of their ``$n`` placeholders."""


def _placeholder(parameter: str) -> sql.SQL:
    return sql.SQL(f"${PARAMETERS.index(parameter) + 1}")


def _rows_from_json(table: sa.Table, parameter: str, keys: tuple[str, ...] | None) -> sql.Composed:
    """``INSERT INTO table`` of the rows of a JSON array parameter, only if the account
    update (CTE ``fenced``) matched; an upsert on ``keys`` unless ``keys`` is None."""
    columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in table.columns)
    statement = sql.SQL(
        "INSERT INTO {table} ({columns}) SELECT {columns} "
        "FROM jsonb_populate_recordset(NULL::{table}, {rows}::jsonb) WHERE EXISTS (SELECT FROM fenced)"
    ).format(table=sql.Identifier(table.name), columns=columns, rows=_placeholder(parameter))
    if keys is None:
        return statement
    updated = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(column.name))
        for column in table.columns
        if column.name not in keys
    )
    return sql.SQL("{statement} ON CONFLICT ({keys}) DO UPDATE SET {updated}").format(
        statement=statement, keys=sql.SQL(", ").join(map(sql.Identifier, keys)), updated=updated
    )


def _batch_statement() -> sql.Composed:
    account = sql.SQL(", ").join(
        sql.SQL("{0} = new.{0}").format(sql.Identifier(name)) for name in journal.ACCOUNT_COLUMNS
    )
    return sql.SQL(
        "WITH fenced AS (UPDATE accounts SET {account} "
        "FROM jsonb_populate_record(NULL::accounts, {new}::jsonb) AS new "
        "WHERE accounts.id = {account_id} AND accounts.writer_epoch = {epoch} RETURNING 1), "
        "orders_written AS ({orders}), fills_written AS ({fills}), "
        "positions_written AS ({positions}), bars_written AS ({bars}), "
        "equity_written AS ({equity_points}) "
        "SELECT count(*) FROM fenced"
    ).format(
        account=account,
        new=_placeholder("account"),
        account_id=_placeholder("account_id"),
        epoch=_placeholder("epoch"),
        orders=_rows_from_json(journal.ORDERS, "orders", ("id",)),
        fills=_rows_from_json(journal.FILLS, "fills", None),
        positions=_rows_from_json(journal.POSITIONS, "positions", ("symbol",)),
        bars=_rows_from_json(journal.BARS, "bars", ("symbol", "interval", "start")),
        equity_points=_rows_from_json(journal.EQUITY_POINTS, "equity_points", ("ts",)),
    )


BATCH_STATEMENT = _batch_statement().as_string().encode()
"""One batch as one statement. Data-modifying CTEs all run, against one snapshot, and a
row's foreign keys are checked when the statement ends, so fills may reference orders
written beside them. Each row-writing CTE reads ``fenced``: when the epoch is not the
writer's, the account update matches no row and nothing else is written either. Composed
once into its text: composing costs more than running it."""

_ENCODER = msgspec.json.Encoder(decimal_format="string")


def json_text(rows: object) -> str:
    """Rows as JSON text: decimals as exact strings, UUIDs and timestamps in their text
    forms, which Postgres parses into the columns' own types."""
    return _ENCODER.encode(rows).decode()


def psycopg_url(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://`` (SQLAlchemy's form) as libpq takes it."""
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


async def connect_autocommit(url: str) -> psycopg.AsyncConnection[Any]:
    """A connection of one's own for one-statement batches: autocommit (each statement its
    own transaction), the server's ``$n`` placeholders (a raw cursor), and UTC, so that a
    timestamp without an offset could only ever mean UTC, as on SQLite."""
    connection = await psycopg.AsyncConnection.connect(
        psycopg_url(url), autocommit=True, options="-c TimeZone=UTC"
    )
    connection.cursor_factory = psycopg.AsyncRawCursor
    return connection


class PostgresBatches:
    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection = connection

    @classmethod
    async def connect(cls, url: str) -> PostgresBatches:
        return cls(await connect_autocommit(url))

    async def try_lock(self) -> bool:
        cursor = await self.connection.execute("SELECT pg_try_advisory_lock($1)", (journal.WRITER_LOCK_KEY,))
        row = await cursor.fetchone()
        return bool(row and row[0])

    async def epoch(self) -> int:
        cursor = await self.connection.execute(
            "SELECT writer_epoch FROM accounts WHERE id = $1", (journal.ACCOUNT_ID,)
        )
        row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def write(self, changes: Changes, *, epoch: int) -> None:
        if changes.account is None:
            return
        rows = journal.batch_rows(changes)
        values = {
            "account_id": journal.ACCOUNT_ID,
            "epoch": epoch,
            "account": json_text(journal.account_row(changes)),
            "orders": json_text(rows.orders),
            "fills": json_text(rows.fills),
            "positions": json_text(rows.positions),
            "bars": json_text(rows.bars),
            "equity_points": json_text(rows.equity_points),
        }
        cursor = await self.connection.execute(BATCH_STATEMENT, [values[name] for name in PARAMETERS])
        row = await cursor.fetchone()
        if row is None or row[0] != 1:
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
