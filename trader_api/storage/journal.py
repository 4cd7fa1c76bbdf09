"""The order engine's journal: its state loaded from the tables, and its changes written
back in batches (many commands, one transaction, one fsync).

SQLAlchemy Core on one connection, with no ORM: rows are plain dicts, each table gets one
multi-row statement per batch, and orders, positions and bars are upserts of their latest
state, so an order created and filled in one batch is one row written once.

**Fencing.** Every batch first updates the account row where ``writer_epoch`` is the
writer's own epoch. A writer that has been replaced (a newer one bumped the epoch with
:func:`claim`) updates nothing: :class:`FencedError` is raised and the transaction rolls
back, so a deposed writer commits nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sapphire.trader_api.core import accounting, bars, domain, risk
from sapphire.trader_api.core.records import Account, Attached, BarKey, Changes, EngineState, Order
from sapphire.trader_api.storage import tables

ACCOUNT_ID = tables.ACCOUNT_ID
ACCOUNTS = tables.Base.metadata.tables["accounts"]
POSITIONS = tables.Base.metadata.tables["positions"]
ORDERS = tables.Base.metadata.tables["orders"]
FILLS = tables.Base.metadata.tables["fills"]
BARS = tables.Base.metadata.tables["bars"]
EQUITY_POINTS = tables.Base.metadata.tables["equity_points"]

LIMIT_FIELDS = tuple(field for field in risk.RiskLimits.__dataclass_fields__)
OPEN_STATUSES = tuple(sorted(status.value for status in domain.OPEN_STATUSES))
WRITER_LOCK_KEY = 0x5A5F_0001
"""The Postgres advisory lock whose holder is the account's writer (distinct from the
migration lock's key)."""


class FencedError(RuntimeError):
    """The writer's epoch is no longer the account's: another writer took over."""


def limits_from_json(data: dict[str, str]) -> risk.RiskLimits:
    return risk.RiskLimits(**{name: Decimal(data[name]) for name in LIMIT_FIELDS})


def limits_to_json(limits: risk.RiskLimits) -> dict[str, str]:
    return {name: format(getattr(limits, name), "f") for name in LIMIT_FIELDS}


# Election -------------------------------------------------------------------------------


async def try_lock(connection: AsyncConnection) -> bool:
    """Take the writer lock on this connection (Postgres; SQLite has one process, always true).

    The lock is held by the connection's session, so it goes when the connection does:
    a writer killed, or its connection terminated, frees it for a standby at once."""
    if connection.dialect.name != "postgresql":
        return True
    result = await connection.execute(sa.select(sa.func.pg_try_advisory_lock(WRITER_LOCK_KEY)))
    held = bool(result.scalar_one())
    await connection.commit()
    return held


async def claim(connection: AsyncConnection, *, address: str, now: datetime) -> int:
    """Bump the fencing epoch and record where this writer takes writes; the new epoch."""
    async with connection.begin():
        result = await connection.execute(
            sa.update(ACCOUNTS)
            .where(ACCOUNTS.c.id == tables.ACCOUNT_ID)
            .values(writer_epoch=ACCOUNTS.c.writer_epoch + 1, writer_address=address, updated_at=now)
            .returning(ACCOUNTS.c.writer_epoch)
        )
        return int(result.scalar_one())


async def writer_address(connection: AsyncConnection) -> str:
    result = await connection.execute(
        sa.select(ACCOUNTS.c.writer_address).where(ACCOUNTS.c.id == tables.ACCOUNT_ID)
    )
    return str(result.scalar_one_or_none() or "")


# Loading --------------------------------------------------------------------------------


def order_from_row(row: Any) -> Order:
    return Order(
        id=row.id,
        sequence=row.sequence,
        client_order_id=row.client_order_id,
        request_hash=row.request_hash,
        symbol=row.symbol,
        side=domain.Side(row.side),
        type=domain.OrderType(row.type),
        time_in_force=domain.TimeInForce(row.time_in_force),
        quantity=row.quantity,
        limit_price=row.limit_price,
        status=domain.OrderStatus(row.status),
        filled_quantity=row.filled_quantity,
        filled_notional=row.filled_notional,
        fees=row.fees,
        agent=row.agent,
        reason=row.reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
        stop_price=row.stop_price,
        trail_amount=row.trail_amount,
        trail_bps=row.trail_bps,
        oco_group=row.oco_group,
        triggered_at=row.triggered_at,
        attached=attached_from_json(row.attached),
        parent_id=row.parent_id,
        amendments=tuple((row.amendments or {}).items()),
        exchange_order_id=row.exchange_order_id,
        exchange_trades=tuple(row.exchange_trades or ()),
    )


def attached_from_json(data: dict[str, str] | None) -> Attached | None:
    return None if data is None else Attached(**{name: Decimal(value) for name, value in data.items()})


def attached_to_json(attached: Attached | None) -> dict[str, str] | None:
    if attached is None:
        return None
    return {name: format(value, "f") for name, value in attached.given().items()}


def portfolio_from_rows(account: Any, positions: Iterable[Any]) -> accounting.Portfolio:
    """The portfolio from an account row and position rows (Core rows or ORM objects)."""
    return accounting.Portfolio(
        cash=account.cash,
        fees=account.fees,
        realized_pnl=account.realized_pnl,
        positions={
            p.symbol: accounting.Position(
                symbol=p.symbol,
                quantity=p.quantity,
                cost_basis=p.cost_basis,
                realized_pnl=p.realized_pnl,
                mark=p.mark,
            )
            for p in positions
        },
    )


async def load(connection: AsyncConnection, *, recent: int = 10_000) -> EngineState:
    """The engine's state as the tables hold it (one snapshot: call inside a transaction),
    with the ``recent`` latest closed orders, so repeats right after a restart need no read."""
    account = (await connection.execute(sa.select(ACCOUNTS).where(ACCOUNTS.c.id == tables.ACCOUNT_ID))).one()
    portfolio = portfolio_from_rows(account, (await connection.execute(sa.select(POSITIONS))).all())
    open_rows = (
        await connection.execute(
            sa.select(ORDERS)
            .where(ORDERS.c.status.in_(OPEN_STATUSES))
            .order_by(ORDERS.c.sequence, ORDERS.c.created_at, ORDERS.c.id)
        )
    ).all()
    index = (
        await connection.execute(
            sa.select(ORDERS.c.client_order_id, ORDERS.c.request_hash, ORDERS.c.id, ORDERS.c.amendments)
        )
    ).all()
    recent_rows = (
        await connection.execute(
            sa.select(ORDERS)
            .where(ORDERS.c.status.not_in(OPEN_STATUSES))
            .order_by(ORDERS.c.sequence.desc())
            .limit(recent)
        )
    ).all()
    intakes = (
        await connection.execute(sa.select(sa.func.coalesce(sa.func.max(ORDERS.c.sequence), 0)))
    ).scalar_one()
    return EngineState(
        account=Account(
            portfolio=portfolio,
            initial_equity=account.initial_equity,
            watermarks=risk.Watermarks(
                trading_day=account.trading_day,
                day_start_equity=account.day_start_equity,
                peak_equity=account.peak_equity,
            ),
            risk_state=domain.RiskState(account.risk_state),
            risk_reason=account.risk_reason,
            limits=limits_from_json(account.risk_limits),
            updated_at=account.updated_at,
        ),
        open_orders=tuple(order_from_row(row) for row in open_rows),
        idempotency={
            key: (fingerprint, row.id)
            for row in index
            for key, fingerprint in ((row.client_order_id, row.request_hash), *(row.amendments or {}).items())
        },
        sequence=int(account.event_sequence),
        intakes=int(intakes),
        recent=tuple(order_from_row(row) for row in reversed(recent_rows)),
    )


async def load_order(connection: AsyncConnection, order_id: uuid.UUID) -> Order | None:
    row = (await connection.execute(sa.select(ORDERS).where(ORDERS.c.id == order_id))).one_or_none()
    return None if row is None else order_from_row(row)


async def load_bars(connection: AsyncConnection, keys: Iterable[BarKey]) -> list[bars.Bar]:
    wanted = list(keys)
    if not wanted:
        return []
    condition = sa.or_(
        *(
            sa.and_(BARS.c.symbol == symbol, BARS.c.interval == interval.value, BARS.c.start == start)
            for symbol, interval, start in wanted
        )
    )
    rows = (await connection.execute(sa.select(BARS).where(condition))).all()
    return [
        bars.Bar(
            symbol=row.symbol,
            interval=bars.Interval(row.interval),
            start=row.start,
            open=row.open,
            high=row.high,
            low=row.low,
            close=row.close,
            volume=row.volume,
            open_ts=row.open_ts,
            close_ts=row.close_ts,
            trades=row.trades,
        )
        for row in rows
    ]


# Writing --------------------------------------------------------------------------------


@functools.cache
def upsert(dialect: str, table: sa.Table, keys: tuple[str, ...]) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` of every other column, for this dialect.

    Built once per table and dialect: constructing a statement costs more than running it."""
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    updated = {c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys}
    return insert.on_conflict_do_update(index_elements=list(keys), set_=updated)


ACCOUNT_COLUMNS = (
    "cash",
    "fees",
    "realized_pnl",
    "trading_day",
    "day_start_equity",
    "peak_equity",
    "risk_state",
    "risk_reason",
    "risk_limits",
    "event_sequence",
    "updated_at",
)
SAVE_ACCOUNT = (
    sa.update(ACCOUNTS)
    .where(ACCOUNTS.c.id == sa.bindparam("account_id"), ACCOUNTS.c.writer_epoch == sa.bindparam("epoch"))
    .values({name: sa.bindparam(f"new_{name}") for name in ACCOUNT_COLUMNS})
)
INSERT_FILLS = sa.insert(FILLS)


@dataclasses.dataclass(frozen=True)
class BatchRows:
    """A batch's changes as table rows (column name -> value), for either batch writer."""

    orders: list[dict[str, Any]]
    fills: list[dict[str, Any]]
    positions: list[dict[str, Any]]
    bars: list[dict[str, Any]]
    equity_points: list[dict[str, Any]]


def batch_rows(changes: Changes) -> BatchRows:
    account = changes.account
    positions = account.portfolio.positions if account is not None else {}
    updated_at = account.updated_at if account is not None else None
    return BatchRows(
        orders=[
            {
                "id": o.id,
                "sequence": o.sequence,
                "client_order_id": o.client_order_id,
                "request_hash": o.request_hash,
                "symbol": o.symbol,
                "side": o.side.value,
                "type": o.type.value,
                "time_in_force": o.time_in_force.value,
                "quantity": o.quantity,
                "limit_price": o.limit_price,
                "status": o.status.value,
                "filled_quantity": o.filled_quantity,
                "filled_notional": o.filled_notional,
                "fees": o.fees,
                "agent": o.agent,
                "reason": o.reason,
                "created_at": o.created_at,
                "updated_at": o.updated_at,
                "stop_price": o.stop_price,
                "trail_amount": o.trail_amount,
                "trail_bps": o.trail_bps,
                "oco_group": o.oco_group,
                "triggered_at": o.triggered_at,
                "attached": attached_to_json(o.attached),
                "parent_id": o.parent_id,
                "amendments": dict(o.amendments) if o.amendments else None,
                "exchange_order_id": o.exchange_order_id,
                "exchange_trades": list(o.exchange_trades) if o.exchange_trades else None,
            }
            for o in changes.orders.values()
        ],
        fills=[
            {
                "id": f.id,
                "order_id": f.order_id,
                "symbol": f.symbol,
                "side": f.side.value,
                "quantity": f.quantity,
                "price": f.price,
                "fee": f.fee,
                "liquidity": f.liquidity,
                "realized_pnl": f.realized_pnl,
                "agent": f.agent,
                "ts": f.ts,
                "exchange_trade_id": f.exchange_trade_id,
            }
            for f in changes.fills
        ],
        positions=[
            {
                "symbol": p.symbol,
                "quantity": p.quantity,
                "cost_basis": p.cost_basis,
                "realized_pnl": p.realized_pnl,
                "mark": p.mark,
                "updated_at": updated_at,
            }
            for p in (positions[s] for s in sorted(changes.positions) if s in positions)
        ],
        bars=[
            {
                "symbol": b.symbol,
                "interval": b.interval.value,
                "start": b.start,
                "open": b.open,
                "high": b.high,
                "low": b.low,
                "close": b.close,
                "volume": b.volume,
                "open_ts": b.open_ts,
                "close_ts": b.close_ts,
                "trades": b.trades,
            }
            for b in changes.bars.values()
        ],
        # A shallow copy: asdict deep-copies every Decimal, a tenth of a batch's encoding.
        equity_points=[] if changes.equity_point is None else [dict(vars(changes.equity_point))],
    )


def account_row(changes: Changes) -> dict[str, Any]:
    """The account row's :data:`ACCOUNT_COLUMNS` as the batch left them."""
    account = changes.account
    if account is None:
        raise ValueError("a batch without an account has nothing to save")
    portfolio = account.portfolio
    return {
        "cash": portfolio.cash,
        "fees": portfolio.fees,
        "realized_pnl": portfolio.realized_pnl,
        "trading_day": account.watermarks.trading_day,
        "day_start_equity": account.watermarks.day_start_equity,
        "peak_equity": account.watermarks.peak_equity,
        "risk_state": account.risk_state.value,
        "risk_reason": account.risk_reason,
        "risk_limits": limits_to_json(account.limits),
        "event_sequence": changes.sequence,
        "updated_at": account.updated_at,
    }


def account_values(changes: Changes, *, epoch: int) -> dict[str, Any]:
    """The parameters of :data:`SAVE_ACCOUNT` for the account as the batch left it."""
    values = account_row(changes)
    return {"account_id": ACCOUNT_ID, "epoch": epoch, **{f"new_{k}": v for k, v in values.items()}}


async def current_epoch(connection: AsyncConnection) -> int:
    result = await connection.execute(sa.select(ACCOUNTS.c.writer_epoch).where(ACCOUNTS.c.id == ACCOUNT_ID))
    return int(result.scalar_one())


async def write(connection: AsyncConnection, changes: Changes, *, epoch: int) -> None:
    """Commit one batch of changes; raises FencedError (nothing committed) if deposed."""
    account = changes.account
    if account is None:
        return
    dialect = connection.dialect.name
    rows = batch_rows(changes)
    async with connection.begin():
        result = await connection.execute(SAVE_ACCOUNT, account_values(changes, epoch=epoch))
        if result.rowcount != 1:
            raise FencedError(f"writer epoch {epoch} is no longer the account's: another writer took over")
        if rows.orders:
            await connection.execute(upsert(dialect, ORDERS, ("id",)), rows.orders)
        if rows.fills:
            await connection.execute(INSERT_FILLS, rows.fills)
        if rows.positions:
            await connection.execute(upsert(dialect, POSITIONS, ("symbol",)), rows.positions)
        if rows.bars:
            await connection.execute(upsert(dialect, BARS, ("symbol", "interval", "start")), rows.bars)
        if rows.equity_points:
            await connection.execute(upsert(dialect, EQUITY_POINTS, ("ts",)), rows.equity_points)


# The equity history ---------------------------------------------------------------------

HISTORY_TIERS = (
    (timedelta(days=1), timedelta(minutes=1)),
    (timedelta(days=30), timedelta(hours=1)),
)
"""Points older than the age keep one per bucket (the last): one a second for the latest
day, one a minute up to 30 days, one an hour beyond."""
THINNING_WINDOW = timedelta(hours=6)
"""How far back past each age one thinning pass looks: the writer thins every few minutes,
so each pass reads a bounded slice of rows that have just crossed an age."""


def last_per_bucket(stamps: Iterable[datetime], width: timedelta) -> set[datetime]:
    """The latest of ``stamps`` in each ``width`` bucket."""
    seconds = int(width.total_seconds())
    last: dict[datetime, datetime] = {}
    for ts in stamps:
        start = bars.floor_to(ts, seconds)
        if start not in last or ts > last[start]:
            last[start] = ts
    return set(last.values())


async def thin_equity_history(
    connection: AsyncConnection, *, now: datetime, window: timedelta | None = THINNING_WINDOW
) -> int:
    """Delete the points :data:`HISTORY_TIERS` no longer keeps; the number deleted.

    ``window`` bounds how far past each age a pass looks; ``None`` looks at everything, as a
    writer's first pass does (points may have crossed an age while no writer ran)."""
    deleted = 0
    column = EQUITY_POINTS.c.ts
    for age, width in HISTORY_TIERS:
        cutoff = bars.floor_to(now - age, int(width.total_seconds()))
        old = column < cutoff
        if window is not None:
            old &= column >= cutoff - window
        stamps = [row.ts for row in (await connection.execute(sa.select(column).where(old))).all()]
        doomed = sorted(set(stamps) - last_per_bucket(stamps, width))
        for start in range(0, len(doomed), 1000):
            chunk = doomed[start : start + 1000]
            deleted += (await connection.execute(sa.delete(EQUITY_POINTS).where(column.in_(chunk)))).rowcount
    return deleted


async def equity_history(
    connection: AsyncConnection, *, since: datetime, width: timedelta, limit: int
) -> list[Any]:
    """The last point of each ``width`` bucket from ``since`` on, oldest first, at most ``limit``
    buckets (the latest ones)."""
    rows = (
        await connection.execute(
            sa.select(EQUITY_POINTS).where(EQUITY_POINTS.c.ts >= since).order_by(EQUITY_POINTS.c.ts)
        )
    ).all()
    kept = last_per_bucket((row.ts for row in rows), width)
    return [row for row in rows if row.ts in kept][-limit:]
