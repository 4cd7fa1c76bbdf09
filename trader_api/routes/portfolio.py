from __future__ import annotations

from fastapi import APIRouter

from sapphire.trader_api.deps import ReadScope, RuntimeDep
from sapphire.trader_api.schemas.portfolio import PortfolioPublic, PositionPublic
from sapphire.trader_api.services import risk_control

router = APIRouter(tags=["portfolio"])


@router.get("/portfolio", response_model=PortfolioPublic)
async def get_portfolio(_: ReadScope, runtime: RuntimeDep) -> PortfolioPublic:
    """Cash, equity marked to the latest quote mids, PnL, fees and open positions."""
    _account, books = await risk_control.view(runtime)
    return PortfolioPublic(
        cash=books.cash,
        equity=books.equity,
        realized_pnl=books.realized_pnl,
        unrealized_pnl=books.unrealized_pnl,
        fees=books.fees,
        gross_exposure=books.gross_exposure,
        positions=[
            PositionPublic(
                symbol=p.symbol,
                quantity=p.quantity,
                average_price=p.average_price,
                mark=p.mark,
                market_value=p.market_value,
                unrealized_pnl=p.unrealized_pnl,
                realized_pnl=p.realized_pnl,
            )
            for p in sorted(books.positions.values(), key=lambda p: p.symbol)
            if p.quantity != 0 or p.realized_pnl != 0
        ],
    )
