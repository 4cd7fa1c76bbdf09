from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from sapphire.trader_api import contract
from sapphire.trader_api.deps import ReadScope, RuntimeDep
from sapphire.trader_api.schemas.common import Name, Symbol
from sapphire.trader_api.schemas.orders import FillPublic
from sapphire.trader_api.services import trading

router = APIRouter(tags=["orders"], route_class=contract.Route)


@router.get("/fills", response_model=list[FillPublic])
async def list_fills(
    _: ReadScope,
    runtime: RuntimeDep,
    order_id: uuid.UUID | None = None,
    symbol: Annotated[Symbol | None, Query()] = None,
    agent: Annotated[Name | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[FillPublic]:
    """Fills, newest first."""
    async with runtime.database.read() as session:
        rows = await trading.list_fills(session, order_id=order_id, symbol=symbol, agent=agent, limit=limit)
    return [FillPublic.model_validate(row) for row in rows]
