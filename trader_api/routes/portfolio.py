from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from sapphire.trader_api import contract
from sapphire.trader_api.deps import ReadScope, RuntimeDep
from sapphire.trader_api.schemas.common import Timestamp
from sapphire.trader_api.schemas.portfolio import EquityPointPublic, HistoryInterval, PortfolioPublic
from sapphire.trader_api.services import events, risk_control

router = APIRouter(tags=["portfolio"], route_class=contract.Route)

HISTORY_POINTS = 5000


@router.get("/portfolio", response_model=PortfolioPublic)
async def get_portfolio(_: ReadScope, runtime: RuntimeDep) -> PortfolioPublic:
    """Cash, equity marked to the latest quote mids, PnL, fees and open positions (as committed)."""
    _account, books = await risk_control.view(runtime)
    return events.portfolio_public(books)


@router.get("/portfolio/history", response_model=list[EquityPointPublic])
async def get_portfolio_history(
    _: ReadScope,
    runtime: RuntimeDep,
    since: Annotated[Timestamp | None, Query(description="Default: one day ago.")] = None,
    interval: HistoryInterval = HistoryInterval.MINUTE,
) -> list[EquityPointPublic]:
    """The equity history, oldest first: the last point of each ``interval`` from ``since`` on
    (at most 5000, the latest). A point holds the books as the last batch of a second in which
    they moved left them, journaled with that batch. The history keeps every such second for a
    day, one a minute for 30 days, then one an hour: an ``interval`` finer than a point's age
    allows gives what is kept."""
    start = since if since is not None else runtime.clock() - timedelta(days=1)
    rows = await risk_control.equity_history(runtime, since=start, width=interval.width, limit=HISTORY_POINTS)
    return [EquityPointPublic.model_validate(row) for row in rows]
