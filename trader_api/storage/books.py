"""The committed account, its positions and its orders, read for the API's views.

Reads only: every change to the books goes through the order engine and its journal
(``storage/journal.py``). Any replica may serve these reads.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from sapphire.trader_api.core import accounting, domain, risk
from sapphire.trader_api.storage import journal, tables


async def has_account(session: AsyncSession) -> bool:
    return await session.get(tables.Account, tables.ACCOUNT_ID) is not None


async def ensure_account(
    session: AsyncSession, *, initial_cash: Decimal, limits: risk.RiskLimits, now: datetime
) -> None:
    """Create the paper account the first time the API starts on a database."""
    if await has_account(session):
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
            risk_limits=journal.limits_to_json(limits),
            updated_at=now,
            writer_epoch=0,
            writer_address="",
            event_sequence=0,
        )
    )


async def account(session: AsyncSession) -> tables.Account:
    statement = sa.select(tables.Account).where(tables.Account.id == tables.ACCOUNT_ID)
    row = (await session.execute(statement)).scalar_one_or_none()
    if row is None:
        raise RuntimeError("the paper account does not exist: the API creates it on start-up")
    return row


async def portfolio(session: AsyncSession, row: tables.Account) -> accounting.Portfolio:
    positions = (await session.execute(sa.select(tables.Position))).scalars().all()
    return journal.portfolio_from_rows(row, positions)


async def order_by_id(session: AsyncSession, order_id: uuid.UUID) -> tables.Order | None:
    return await session.get(tables.Order, order_id)
