from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from sapphire.trader_api import contract
from sapphire.trader_api.deps import AgentScope, ReadScope, RuntimeDep
from sapphire.trader_api.schemas.common import Name
from sapphire.trader_api.schemas.signals import AgentPublic, AgentStatsPublic, HeartbeatCreate
from sapphire.trader_api.services import signals

router = APIRouter(tags=["agents"], route_class=contract.Route)

AgentName = Annotated[Name, Path(description="The TradingAgent's name.")]


@router.post("/agents/{name}/heartbeat", response_model=AgentPublic)
async def heartbeat(
    name: AgentName, request: HeartbeatCreate, _: AgentScope, runtime: RuntimeDep
) -> AgentPublic:
    """Register the agent on its first heartbeat; later ones refresh it."""
    agent = await signals.heartbeat(runtime, name, request)
    return signals.agent_public(agent, runtime.clock(), runtime.settings.agent_stale_after_seconds)


@router.get("/agents", response_model=list[AgentPublic])
async def list_agents(_: ReadScope, runtime: RuntimeDep) -> list[AgentPublic]:
    now = runtime.clock()
    stale_after = runtime.settings.agent_stale_after_seconds
    return [signals.agent_public(agent, now, stale_after) for agent in await signals.list_agents(runtime)]


@router.get("/agents/{name}/stats", response_model=AgentStatsPublic)
async def agent_stats(name: AgentName, _: ReadScope, runtime: RuntimeDep) -> AgentStatsPublic:
    """Signals and trading figures of one agent (the operator shows them in TradingAgent status).

    An agent that never sent anything gets zeros, not 404: its pod may just be starting."""
    return AgentStatsPublic.model_validate(await signals.agent_stats(runtime, name))
