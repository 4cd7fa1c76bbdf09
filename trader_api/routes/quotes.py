from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from sapphire.trader_api import contract
from sapphire.trader_api.deps import MarketDep, ReadScope
from sapphire.trader_api.schemas.common import Symbol
from sapphire.trader_api.schemas.market import QuotePublic

router = APIRouter(tags=["market data"], route_class=contract.Route)


@router.get(
    "/quotes/{symbol}",
    response_model=QuotePublic,
    responses=contract.responses(contract.NOT_FOUND.saying("No quote yet")),
)
async def get_quote(symbol: Annotated[Symbol, Path()], _: ReadScope, market: MarketDep) -> QuotePublic:
    quote, stale = await market.quote_with_staleness(symbol)
    return QuotePublic(
        symbol=quote.symbol,
        bid=quote.bid,
        ask=quote.ask,
        last=quote.last,
        size=quote.size,
        ts=quote.ts,
        stale=stale,
    )
