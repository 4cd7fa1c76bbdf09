"""The risk state machine: the loss monitors that halt trading, and the admin controls.

After every change to the books (a fill, or ticks marking positions) the monitors compare
equity with the day's opening equity and with its peak; a breach moves the state to
``HALTED`` and cancels every open order, in the same transaction.

An admin who moves the state out of ``HALTED`` re-bases both watermarks at the current
equity, so the loss that caused the halt does not halt trading again on the next tick.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from sapphire.trader_api.core import accounting, domain, risk
from sapphire.trader_api.schemas.orders import OrderPublic
from sapphire.trader_api.services.runtime import Outbox, Runtime
from sapphire.trader_api.storage import books, tables


def risk_payload(account: tables.Account) -> dict[str, Any]:
    return {"state": account.risk_state, "reason": account.risk_reason, "limits": account.risk_limits}


def _set_gauges(runtime: Runtime, state: str, equity: Decimal) -> None:
    for candidate in domain.RiskState:
        runtime.metrics.risk_state.labels(candidate.value).set(1 if candidate.value == state else 0)
    runtime.metrics.equity.set(float(equity))  # a gauge is a float; the books stay Decimal


async def _change_state(
    runtime: Runtime,
    session: AsyncSession,
    account: tables.Account,
    *,
    state: domain.RiskState,
    reason: str,
    outbox: Outbox,
) -> None:
    now = runtime.clock()
    account.risk_state, account.risk_reason, account.updated_at = state.value, reason, now
    if state is domain.RiskState.HALTED:
        for order in await books.open_orders(session):
            order.status, order.reason, order.updated_at = (
                domain.OrderStatus.CANCELED.value,
                f"canceled: trading HALTED ({reason})",
                now,
            )
            outbox.event(
                "order",
                OrderPublic.model_validate(order).model_dump(mode="json"),
                channel=runtime.names.orders,
            )
    outbox.event("risk", risk_payload(account), channel=runtime.names.risk)


async def after_books_change(
    runtime: Runtime,
    session: AsyncSession,
    account: tables.Account,
    portfolio: accounting.Portfolio,
    *,
    symbols: Iterable[str],
    outbox: Outbox,
) -> None:
    """Save the books, move the watermarks and halt on a daily-loss or drawdown breach."""
    now = runtime.clock()
    await books.save_portfolio(session, account, portfolio, symbols=symbols, now=now)
    equity = portfolio.equity
    marks = risk.roll_watermarks(books.watermarks(account), equity=equity, today=now.date())
    books.save_watermarks(account, marks)
    if account.risk_state != domain.RiskState.HALTED.value:
        reason = risk.breach(marks, equity=equity, limits=books.limits_from_json(account.risk_limits))
        if reason is not None:
            await _change_state(
                runtime,
                session,
                account,
                state=domain.RiskState.HALTED,
                reason=f"auto: {reason}",
                outbox=outbox,
            )
    _set_gauges(runtime, account.risk_state, equity)


async def set_state(runtime: Runtime, state: domain.RiskState, reason: str) -> tables.Account:
    outbox = runtime.outbox()
    async with runtime.database.write() as session:
        account = await books.account(session, lock=True)
        portfolio = await books.portfolio(session, account)
        if account.risk_state == domain.RiskState.HALTED.value and state is not domain.RiskState.HALTED:
            equity = portfolio.equity
            books.save_watermarks(
                account,
                risk.Watermarks(
                    trading_day=runtime.clock().date(), day_start_equity=equity, peak_equity=equity
                ),
            )
        await _change_state(runtime, session, account, state=state, reason=reason, outbox=outbox)
        await runtime.flush(outbox)
    _set_gauges(runtime, account.risk_state, portfolio.equity)
    return account


async def set_limits(runtime: Runtime, changes: dict[str, Decimal]) -> tables.Account:
    outbox = runtime.outbox()
    async with runtime.database.write() as session:
        account = await books.account(session, lock=True)
        limits = dataclasses.replace(books.limits_from_json(account.risk_limits), **changes)
        account.risk_limits = books.limits_to_json(limits)
        account.updated_at = runtime.clock()
        outbox.event("risk", risk_payload(account), channel=runtime.names.risk)
        await runtime.flush(outbox)
    return account


async def view(runtime: Runtime) -> tuple[tables.Account, accounting.Portfolio]:
    async with runtime.database.read() as session:
        account = await books.account(session, lock=False)
        return account, await books.portfolio(session, account)
