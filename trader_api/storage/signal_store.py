"""Where the signal journal stores a batch: one transaction, and the refusals it found.

A signal is refused when its agent is registered under another role (``agents.role``, set
by the agent's heartbeat). The check and the insert of the rest are one transaction, so a
role that changes meanwhile is seen either before or after the whole batch.

Two kinds, one interface (:class:`SignalStore`), as for the order journal
(:mod:`~sapphire.trader_api.storage.batches`):

* :class:`PostgresSignals` holds a psycopg connection of its own and sends each batch as
  **one statement** in autocommit (:data:`STORE_STATEMENT`): the rows come from one JSON
  parameter (``jsonb_populate_recordset``), a CTE finds the refused ones, another inserts the
  rest, and the statement returns the refusals. One round trip, one fsync; no ORM session,
  which cost about 2 ms of the API's CPU a batch (four round trips and the unit of work).
  A lost connection is replaced and the batch sent once more (exactly once: its ids are
  fixed); what fails again is refused.
* :class:`CoreSignals` (SQLite, the embedded mode) does the same in two statements on an
  SQLAlchemy Core connection, taking its turn with the process's other writes.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import msgspec
import psycopg
import sqlalchemy as sa
from psycopg import sql

from sapphire.domain.signals import Direction
from sapphire.trader_api.storage import batches, tables
from sapphire.trader_api.storage.database import Database


class SignalRow(msgspec.Struct, frozen=True, gc=False):
    """One row of ``signals``, field for field (and ``SignalPublic``'s fields, in its order)."""

    id: uuid.UUID
    agent: str
    role: str
    symbol: str
    direction: Direction
    strength: Decimal
    confidence: Decimal
    horizon_seconds: int
    rationale: str
    model: str | None
    ts: datetime
    created_at: datetime


Refusals = dict[uuid.UUID, str]
"""The refused rows' ids, each with the role its agent is registered under."""


class SignalStore(Protocol):
    async def store(self, rows: Sequence[SignalRow]) -> Refusals:
        """Insert the rows whose agent is not registered under another role, all in one
        transaction; raises (nothing stored) when the transaction fails."""

    async def close(self) -> None: ...


def open_store(database: Database) -> SignalStore:
    if database.is_sqlite:
        return CoreSignals(database)
    return PostgresSignals(database.url)


_SIGNALS = tables.Base.metadata.tables[tables.Signal.__tablename__]
_AGENTS = tables.Base.metadata.tables[tables.Agent.__tablename__]
_COLUMNS = tuple(column.name for column in _SIGNALS.columns)
if set(_COLUMNS) != set(SignalRow.__struct_fields__):  # one definition of the row: the table's
    raise TypeError(f"SignalRow's fields {SignalRow.__struct_fields__} are not the columns {_COLUMNS}")


def _store_statement() -> bytes:
    columns = sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
    statement = sql.SQL(
        "WITH incoming AS (SELECT * FROM jsonb_populate_recordset(NULL::{signals}, $1::jsonb)), "
        "refused AS (SELECT incoming.id, {agents}.role FROM incoming JOIN {agents} "
        "ON {agents}.name = incoming.agent WHERE {agents}.role <> incoming.role), "
        "stored AS (INSERT INTO {signals} ({columns}) SELECT {columns} FROM incoming "
        "WHERE incoming.id NOT IN (SELECT id FROM refused) ON CONFLICT (id) DO NOTHING) "
        "SELECT id, role FROM refused"
    ).format(signals=sql.Identifier(_SIGNALS.name), agents=sql.Identifier(_AGENTS.name), columns=columns)
    return statement.as_string().encode()


STORE_STATEMENT = _store_statement()
"""One batch as one statement. A data-modifying CTE runs to completion whether or not the
query reads it, against the same snapshot as ``refused``. A row already stored (same id) is
left as it is: sent again after a lost connection, the batch is stored exactly once."""


class PostgresSignals:
    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: psycopg.AsyncConnection[Any] | None = None

    async def store(self, rows: Sequence[SignalRow]) -> Refusals:
        rows_json = batches.json_text(rows)
        try:
            return await self._execute(rows_json)
        except psycopg.OperationalError:
            # The connection was lost (a restarted server, a cut idle connection): the
            # batch may or may not have committed. Sent once more on a new connection it is
            # stored exactly once (its ids are fixed), with the same refusals. A second
            # failure is the caller's to answer (503).
            return await self._execute(rows_json)

    async def _execute(self, rows_json: str) -> Refusals:
        connection = self._connection
        if connection is None or connection.closed:
            connection = self._connection = await batches.connect_autocommit(self.url)
        try:
            cursor = await connection.execute(STORE_STATEMENT, [rows_json])
            return {row[0]: row[1] for row in await cursor.fetchall()}
        except BaseException:
            self._connection = None  # whatever state it is in, the next attempt starts afresh
            with contextlib.suppress(Exception):
                await connection.close()
            raise

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()


class CoreSignals:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def store(self, rows: Sequence[SignalRow]) -> Refusals:
        names = {row.agent for row in rows}
        async with self.database.serialized(), self.database.engine.begin() as connection:
            found = await connection.execute(
                sa.select(_AGENTS.c.name, _AGENTS.c.role).where(_AGENTS.c.name.in_(names))
            )
            registered: dict[str, str] = {name: role for name, role in found.all()}
            refused = {
                row.id: registered[row.agent]
                for row in rows
                if registered.get(row.agent, row.role) != row.role
            }
            kept = [msgspec.structs.asdict(row) for row in rows if row.id not in refused]
            if kept:
                await connection.execute(sa.insert(_SIGNALS), kept)
        return refused

    async def close(self) -> None:
        return None
