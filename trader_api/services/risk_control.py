"""The kill switch and the risk limits, as admins move them.

The state machine itself (the loss monitors that halt trading, the re-basing of the
watermarks when trading resumes, the cancels on HALTED) lives in the order engine; these
are its commands, and the views that read the committed state back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sapphire.trader_api.core import accounting, domain, records
from sapphire.trader_api.schemas.portfolio import RiskLimitsPublic, RiskPublic
from sapphire.trader_api.services.runtime import Runtime
from sapphire.trader_api.services.writer import Writer
from sapphire.trader_api.storage import books, journal, tables


async def set_state(writer: Writer, state: domain.RiskState, reason: str) -> None:
    await writer.submit(records.SetRiskState(state, reason))


async def set_limits(writer: Writer, changes: dict[str, Decimal]) -> None:
    await writer.submit(records.SetLimits(changes))


async def view(runtime: Runtime) -> tuple[tables.Account, accounting.Portfolio]:
    """The committed account and portfolio, from one snapshot (any replica may answer)."""
    async with runtime.database.read() as session:
        account = await books.account(session)
        return account, await books.portfolio(session, account)


async def public(runtime: Runtime) -> RiskPublic:
    """The risk state, limits and watermarks as ``/v1/risk`` shows them."""
    account, portfolio = await view(runtime)
    return RiskPublic(
        state=domain.RiskState(account.risk_state),
        reason=account.risk_reason,
        limits=RiskLimitsPublic.model_validate(
            journal.limits_from_json(account.risk_limits), from_attributes=True
        ),
        equity=portfolio.equity,
        peak_equity=account.peak_equity,
        day_start_equity=account.day_start_equity,
    )


async def equity_history(runtime: Runtime, *, since: datetime, width: timedelta, limit: int) -> list[Any]:
    """The journaled equity history (``journal.equity_history``): rows of ``EquityPointPublic``."""
    async with runtime.database.engine.connect() as connection:
        return await journal.equity_history(connection, since=since, width=width, limit=limit)
