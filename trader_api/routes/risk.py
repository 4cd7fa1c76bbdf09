from __future__ import annotations

from fastapi import APIRouter

from sapphire.trader_api import contract
from sapphire.trader_api.deps import AdminScope, ReadScope, RuntimeDep, WriterDep
from sapphire.trader_api.schemas.portfolio import (
    RiskLimitsUpdate,
    RiskPublic,
    RiskStateUpdate,
)
from sapphire.trader_api.services import risk_control

router = APIRouter(tags=["risk"], route_class=contract.Route)


@router.get("/risk", response_model=RiskPublic)
async def get_risk(_: ReadScope, runtime: RuntimeDep) -> RiskPublic:
    return await risk_control.public(runtime)


@router.put("/risk/state", response_model=RiskPublic)
async def put_risk_state(
    update: RiskStateUpdate, _: AdminScope, runtime: RuntimeDep, writer: WriterDep
) -> RiskPublic:
    """Move the kill switch. HALTED cancels every open order; leaving HALTED re-bases the loss monitors."""
    await risk_control.set_state(writer, update.state, update.reason)
    return await risk_control.public(runtime)


@router.put("/risk/limits", response_model=RiskPublic)
async def put_risk_limits(
    update: RiskLimitsUpdate, _: AdminScope, runtime: RuntimeDep, writer: WriterDep
) -> RiskPublic:
    """Change some limits; omitted ones keep their value."""
    await risk_control.set_limits(writer, update.model_dump(exclude_none=True))
    return await risk_control.public(runtime)
