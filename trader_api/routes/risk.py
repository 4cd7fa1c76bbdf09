from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter

from sapphire.trader_api import contract
from sapphire.trader_api.core import domain
from sapphire.trader_api.deps import AdminScope, ReadScope, RuntimeDep, WriterDep
from sapphire.trader_api.schemas.portfolio import (
    RiskLimitsPublic,
    RiskLimitsUpdate,
    RiskPublic,
    RiskStateUpdate,
)
from sapphire.trader_api.services import risk_control
from sapphire.trader_api.storage import journal, tables

router = APIRouter(tags=["risk"], route_class=contract.Route)


def _public(account: tables.Account, equity: Decimal) -> RiskPublic:
    return RiskPublic(
        state=domain.RiskState(account.risk_state),
        reason=account.risk_reason,
        limits=RiskLimitsPublic.model_validate(
            journal.limits_from_json(account.risk_limits), from_attributes=True
        ),
        equity=equity,
        peak_equity=account.peak_equity,
        day_start_equity=account.day_start_equity,
    )


@router.get("/risk", response_model=RiskPublic)
async def get_risk(_: ReadScope, runtime: RuntimeDep) -> RiskPublic:
    account, portfolio = await risk_control.view(runtime)
    return _public(account, portfolio.equity)


@router.put("/risk/state", response_model=RiskPublic)
async def put_risk_state(
    update: RiskStateUpdate, _: AdminScope, runtime: RuntimeDep, writer: WriterDep
) -> RiskPublic:
    """Move the kill switch. HALTED cancels every open order; leaving HALTED re-bases the loss monitors."""
    await risk_control.set_state(writer, update.state, update.reason)
    account, portfolio = await risk_control.view(runtime)
    return _public(account, portfolio.equity)


@router.put("/risk/limits", response_model=RiskPublic)
async def put_risk_limits(
    update: RiskLimitsUpdate, _: AdminScope, runtime: RuntimeDep, writer: WriterDep
) -> RiskPublic:
    """Change some limits; omitted ones keep their value."""
    await risk_control.set_limits(writer, update.model_dump(exclude_none=True))
    account, portfolio = await risk_control.view(runtime)
    return _public(account, portfolio.equity)
