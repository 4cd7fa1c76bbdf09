"""The shared risk limits (:class:`sapphire.domain.risk.NotionalLimits`) are declared again only
where a surface must validate and document them for its own readers: the TradingAgent CRD, the
trader API's settings and wire models, the executor's settings. Each must name every shared limit
under the same name, so a limit added or renamed in one home cannot silently miss a surface."""

from __future__ import annotations

import dataclasses

import pydantic
import pytest

from sapphire.agents.settings import AgentSettings
from sapphire.domain.risk import NotionalLimits
from sapphire.resources import tradingagent
from sapphire.trader_api.core import risk
from sapphire.trader_api.schemas import portfolio
from sapphire.trader_api.settings import RiskLimitsConfig
from sapphire.up import plan

SHARED = {field.name for field in dataclasses.fields(NotionalLimits)}


def _names(surface: type) -> set[str]:
    if issubclass(surface, pydantic.BaseModel):
        return set(surface.model_fields)
    assert dataclasses.is_dataclass(surface)
    return {field.name for field in dataclasses.fields(surface)}


def test_the_shared_limits_are_the_four_notional_ones() -> None:
    assert {"max_order_notional", "max_position_notional", "max_gross_exposure", "max_daily_loss"} == SHARED


@pytest.mark.parametrize(
    "surface",
    [
        tradingagent.RiskLimits,
        RiskLimitsConfig,
        portfolio.RiskLimitsPublic,
        portfolio.RiskLimitsUpdate,
        risk.RiskLimits,
        plan.RiskLimits,
    ],
    ids=lambda surface: f"{surface.__module__}.{surface.__qualname__}",
)
def test_each_surface_names_every_shared_limit(surface: type) -> None:
    assert _names(surface) >= SHARED, sorted(SHARED - _names(surface))


def test_the_executor_settings_carry_every_shared_limit_after_their_prefix() -> None:
    named = {name.removeprefix("risk_") for name in AgentSettings.model_fields if name.startswith("risk_")}
    assert named >= SHARED, sorted(SHARED - named)
