from __future__ import annotations

from fastapi import APIRouter

from sapphire.trader_api import contract
from sapphire.trader_api.deps import MarketDep, ReadScope, RuntimeDep
from sapphire.trader_api.schemas.market import InstrumentPublic

router = APIRouter(tags=["market data"], route_class=contract.Route)


@router.get("/instruments", response_model=list[InstrumentPublic])
async def list_instruments(_: ReadScope, runtime: RuntimeDep, market: MarketDep) -> list[InstrumentPublic]:
    """The tradable instruments; in all-market mode, every symbol that has market data."""
    catalog = runtime.catalog
    symbols = await market.seen_symbols() if catalog.all_market else sorted(catalog.configured)
    instruments = [catalog.get(symbol) for symbol in symbols]
    return [InstrumentPublic.model_validate(i, from_attributes=True) for i in instruments if i is not None]
