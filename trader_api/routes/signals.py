from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from sapphire.trader_api import contract
from sapphire.trader_api.deps import AgentScope, ReadScope, RuntimeDep, SignalJournalDep
from sapphire.trader_api.schemas.common import Name, Symbol, Timestamp
from sapphire.trader_api.schemas.signals import SignalCreate, SignalPublic
from sapphire.trader_api.services import signals

router = APIRouter(tags=["signals"], route_class=contract.Route)


@router.post("/signals", response_model=SignalPublic, status_code=status.HTTP_201_CREATED)
async def post_signal(request: SignalCreate, _: AgentScope, journal: SignalJournalDep) -> Response:
    """Store a signal (batched with others in one commit), then publish it on ``{prefix}signals``."""
    # The journal answers with the stored signal's JSON, the very text it publishes.
    return Response(
        await journal.submit(request), status_code=status.HTTP_201_CREATED, media_type="application/json"
    )


@router.get("/signals", response_model=list[SignalPublic])
async def list_signals(
    _: ReadScope,
    runtime: RuntimeDep,
    agent: Annotated[Name | None, Query()] = None,
    symbol: Annotated[Symbol | None, Query()] = None,
    since: Annotated[Timestamp | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[SignalPublic]:
    """Signals, newest first."""
    rows = await signals.list_signals(runtime, agent=agent, symbol=symbol, since=since, limit=limit)
    return [SignalPublic.model_validate(row) for row in rows]
