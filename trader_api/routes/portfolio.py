from __future__ import annotations

from fastapi import APIRouter

from sapphire.trader_api.deps import ReadScope, RuntimeDep
from sapphire.trader_api.schemas.portfolio import PortfolioPublic
from sapphire.trader_api.services import events, risk_control

router = APIRouter(tags=["portfolio"])


@router.get("/portfolio", response_model=PortfolioPublic)
async def get_portfolio(_: ReadScope, runtime: RuntimeDep) -> PortfolioPublic:
    """Cash, equity marked to the latest quote mids, PnL, fees and open positions (as committed)."""
    _account, books = await risk_control.view(runtime)
    return events.portfolio_public(books)
