from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from sapphire.trader_api import contract
from sapphire.trader_api.deps import AgentScope, ReadScope, RuntimeDep
from sapphire.trader_api.schemas.common import Symbol, Timestamp
from sapphire.trader_api.schemas.signals import HeadlineCreate, HeadlinePublic
from sapphire.trader_api.services import signals

router = APIRouter(tags=["headlines"], route_class=contract.Route)


@router.post("/headlines", response_model=HeadlinePublic, status_code=status.HTTP_201_CREATED)
async def post_headline(request: HeadlineCreate, _: AgentScope, runtime: RuntimeDep) -> HeadlinePublic:
    return HeadlinePublic.model_validate(await signals.store_headline(runtime, request))


@router.get("/headlines", response_model=list[HeadlinePublic])
async def list_headlines(
    _: ReadScope,
    runtime: RuntimeDep,
    symbol: Annotated[Symbol | None, Query()] = None,
    since: Annotated[Timestamp | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[HeadlinePublic]:
    """Headlines, newest first (for the sentiment analyst)."""
    rows = await signals.list_headlines(runtime, symbol=symbol, since=since, limit=limit)
    return [HeadlinePublic.model_validate(row) for row in rows]
