"""The kill switch and the risk limits, as admins move them.

The state machine itself (the loss monitors that halt trading, the re-basing of the
watermarks when trading resumes, the cancels on HALTED) lives in the order engine; these
are its commands, and the views that read the committed state back.
"""

from __future__ import annotations

from decimal import Decimal

from sapphire.trader_api.core import accounting, domain, records
from sapphire.trader_api.services.runtime import Runtime
from sapphire.trader_api.services.writer import Writer
from sapphire.trader_api.storage import books, tables


async def set_state(writer: Writer, state: domain.RiskState, reason: str) -> None:
    await writer.submit(records.SetRiskState(state, reason))


async def set_limits(writer: Writer, changes: dict[str, Decimal]) -> None:
    await writer.submit(records.SetLimits(changes))


async def view(runtime: Runtime) -> tuple[tables.Account, accounting.Portfolio]:
    """The committed account and portfolio, from one snapshot (any replica may answer)."""
    async with runtime.database.read() as session:
        account = await books.account(session)
        return account, await books.portfolio(session, account)
