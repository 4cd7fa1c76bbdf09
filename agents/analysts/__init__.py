"""The six analysts. :func:`build_analyst` maps a TradingAgent role to its class."""

from __future__ import annotations

from sapphire.agents.analysts import (
    mean_reversion,
    microstructure,
    momentum,
    sentiment,
    strategist,
    volatility,
)
from sapphire.agents.analysts.base import Analyst
from sapphire.agents.llm import base as llm

_CLASSES: dict[str, type[Analyst]] = {
    "momentum": momentum.MomentumAnalyst,
    "mean-reversion": mean_reversion.MeanReversionAnalyst,
    "volatility": volatility.VolatilityAnalyst,
    "microstructure": microstructure.MicrostructureAnalyst,
    "sentiment": sentiment.SentimentAnalyst,
    "strategist": strategist.StrategistAnalyst,
}
ROLES = tuple(_CLASSES)
"""The analyst roles of a TradingAgent's ``spec.role`` (the executor's is not one: it trades)."""


def build_analyst(role: str, *, agent: str, model: llm.StructuredModel | None = None) -> Analyst:
    """The analyst for a TradingAgent ``spec.role`` (not ``executor``: that one trades)."""
    try:
        return _CLASSES[role](agent=agent, model=model)
    except KeyError:
        raise ValueError(f"role: unknown analyst role {role!r}; expected one of {', '.join(ROLES)}") from None


__all__ = ["ROLES", "Analyst", "build_analyst"]
