from __future__ import annotations

from fastapi import APIRouter

from sapphire.trader_api import contract, wire
from sapphire.trader_api.deps import AgentScope, RuntimeDep, WriterDep
from sapphire.trader_api.schemas.market import TicksAccepted
from sapphire.trader_api.services import ingest

router = APIRouter(tags=["market data"], route_class=contract.Route)


@wire.post(router, "/ticks", response_model=TicksAccepted)
async def post_ticks(
    _: AgentScope, batch: wire.TickBatchBody, runtime: RuntimeDep, writer: WriterDep
) -> TicksAccepted:
    """Ingest ticks: bars, marks and resting-order fills committed, then the latest quote,
    the tick stream and the events published."""
    return TicksAccepted(accepted=await ingest.ingest(runtime, writer, batch.quotes()))
