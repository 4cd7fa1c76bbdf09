from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from sapphire.trader_api import contract
from sapphire.trader_api.core.bars import Interval
from sapphire.trader_api.deps import MarketDep, ReadScope
from sapphire.trader_api.schemas.common import Symbol
from sapphire.trader_api.schemas.market import BarPublic

router = APIRouter(tags=["market data"], route_class=contract.Route)


@router.get("/bars/{symbol}", response_model=list[BarPublic])
async def get_bars(
    symbol: Annotated[Symbol, Path()],
    _: ReadScope,
    market: MarketDep,
    interval: Interval = Interval.MINUTE,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[BarPublic]:
    """The latest ``limit`` OHLCV bars, oldest first."""
    return [BarPublic.model_validate(row) for row in await market.bars(symbol, interval, limit)]
