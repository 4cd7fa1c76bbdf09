"""The account, its positions and its orders, read and written as pure-core objects."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from sapphire.trader_api.core import accounting, domain, risk, venue
from sapphire.trader_api.storage import tables

LIMIT_FIELDS = tuple(field for field in risk.RiskLimits.__dataclass_fields__)


def limits_from_json(data: dict[str, str]) -> risk.RiskLimits:
    return risk.RiskLimits(**{name: Decimal(data[name]) for name in LIMIT_FIELDS})


def limits_to_json(limits: risk.RiskLimits) -> dict[str, str]:
    return {name: format(getattr(limits, name), "f") for name in LIMIT_FIELDS}


async def ensure_account(
    session: AsyncSession, *, initial_cash: Decimal, limits: risk.RiskLimits, now: datetime
) -> None:
    """Create the paper account the first time the API starts on a database."""
    if await session.get(tables.Account, tables.ACCOUNT_ID) is not None:
        return
    session.add(
        tables.Account(
            id=tables.ACCOUNT_ID,
            cash=initial_cash,
            fees=Decimal(0),
            realized_pnl=Decimal(0),
            initial_equity=initial_cash,
            trading_day=now.date(),
            day_start_equity=initial_cash,
            peak_equity=initial_cash,
            risk_state=domain.RiskState.ACTIVE.value,
            risk_reason="",
            risk_limits=limits_to_json(limits),
            updated_at=now,
        )
    )


async def account(session: AsyncSession, *, lock: bool) -> tables.Account:
    """The account row; ``lock`` takes the row lock that serializes changes to the books."""
    statement = sa.select(tables.Account).where(tables.Account.id == tables.ACCOUNT_ID)
    if lock:
        statement = statement.with_for_update()
    row = (await session.execute(statement)).scalar_one_or_none()
    if row is None:
        raise RuntimeError("the paper account does not exist: the API creates it on start-up")
    return row


async def portfolio(session: AsyncSession, row: tables.Account) -> accounting.Portfolio:
    positions = (await session.execute(sa.select(tables.Position))).scalars().all()
    return accounting.Portfolio(
        cash=row.cash,
        fees=row.fees,
        realized_pnl=row.realized_pnl,
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


async def save_portfolio(
    session: AsyncSession,
    row: tables.Account,
    books: accounting.Portfolio,
    *,
    symbols: Iterable[str],
    now: datetime,
) -> None:
    """Write the account totals and the positions of ``symbols`` back."""
    row.cash, row.fees, row.realized_pnl, row.updated_at = books.cash, books.fees, books.realized_pnl, now
    for symbol in set(symbols):
        if symbol not in books.positions:
            continue
        position = books.positions[symbol]
        stored = await session.get(tables.Position, symbol)
        if stored is None:
            stored = tables.Position(symbol=symbol)
            session.add(stored)
        stored.quantity, stored.cost_basis = position.quantity, position.cost_basis
        stored.realized_pnl, stored.mark, stored.updated_at = position.realized_pnl, position.mark, now


def watermarks(row: tables.Account) -> risk.Watermarks:
    return risk.Watermarks(
        trading_day=row.trading_day, day_start_equity=row.day_start_equity, peak_equity=row.peak_equity
    )


def save_watermarks(row: tables.Account, marks: risk.Watermarks) -> None:
    row.trading_day, row.day_start_equity, row.peak_equity = (
        marks.trading_day,
        marks.day_start_equity,
        marks.peak_equity,
    )


def working(order: tables.Order) -> venue.WorkingOrder:
    return venue.WorkingOrder(
        symbol=order.symbol,
        side=domain.Side(order.side),
        type=domain.OrderType(order.type),
        time_in_force=domain.TimeInForce(order.time_in_force),
        quantity=order.quantity,
        limit_price=order.limit_price,
        filled_quantity=order.filled_quantity,
        created_at=order.created_at,
    )


async def open_orders(session: AsyncSession, symbols: Sequence[str] | None = None) -> list[tables.Order]:
    """Open orders, oldest first (time priority)."""
    statement = sa.select(tables.Order).where(
        tables.Order.status.in_([domain.OrderStatus.NEW.value, domain.OrderStatus.PARTIALLY_FILLED.value])
    )
    if symbols is not None:
        statement = statement.where(tables.Order.symbol.in_(list(symbols)))
    statement = statement.order_by(tables.Order.created_at, tables.Order.id)
    return list((await session.execute(statement)).scalars().all())


async def order_by_client_id(session: AsyncSession, client_order_id: str) -> tables.Order | None:
    statement = sa.select(tables.Order).where(tables.Order.client_order_id == client_order_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def order_by_id(session: AsyncSession, order_id: uuid.UUID) -> tables.Order | None:
    return await session.get(tables.Order, order_id)
