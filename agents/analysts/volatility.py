"""Volatility regime: call risk-off when short-term volatility explodes relative to its norm.

This analyst does not vote on direction. Its risk-off signal is ``flat`` with a confidence
that grows with the volatility ratio, and the executor's aggregation treats a flat signal
from this role as a damper on every other vote for the symbol (see
:mod:`sapphire.agents.aggregation`). In a calm or normal regime it abstains.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sapphire.agents import indicators, market
from sapphire.agents.analysts import base
from sapphire.agents.llm import base as llm


@dataclass(frozen=True)
class VolatilityParams:
    short_window: int = 20
    long_window: int = 200
    risk_off_ratio: float = 2.0
    horizon_seconds: int = 600


@dataclass
class _State:
    short: indicators.RealizedVolatility
    long: indicators.RealizedVolatility


class VolatilityAnalyst(base.Analyst):
    role = "volatility"

    def __init__(
        self, *, agent: str, model: llm.StructuredModel | None = None, params: VolatilityParams | None = None
    ) -> None:
        super().__init__(agent=agent, model=model)
        self.params = params or VolatilityParams()
        self._states: dict[str, _State] = {}

    def observe(self, tick: market.Tick) -> None:
        price = float(tick.mid if tick.bid > 0 and tick.ask > 0 else tick.last)
        state = self._states.get(tick.symbol)
        if state is None:
            p = self.params
            state = _State(
                indicators.RealizedVolatility(p.short_window), indicators.RealizedVolatility(p.long_window)
            )
            self._states[tick.symbol] = state
        state.short.update(price)
        state.long.update(price)

    def forget(self, symbol: str) -> None:
        self._states.pop(symbol, None)

    def regime_ratio(self, symbol: str) -> float | None:
        """Short-window over long-window realized volatility, once both have enough data."""
        state = self._states.get(symbol)
        if state is None or not state.short.ready or state.long.stats.count < self.params.long_window // 2:
            return None
        if state.long.value <= 0:
            return None
        return state.short.value / state.long.value

    def evaluate(self, symbol: str, now: datetime) -> market.Signal | None:
        ratio = self.regime_ratio(symbol)
        if ratio is None or ratio < self.params.risk_off_ratio:
            return None
        state = self._states[symbol]
        threshold = self.params.risk_off_ratio
        return market.make_signal(
            agent=self.agent,
            role=self.role,
            symbol=symbol,
            score=0.0,
            confidence=min(1.0, 0.5 + (ratio - threshold) / threshold),
            horizon_seconds=self.params.horizon_seconds,
            rationale=(
                f"risk-off: {self.params.short_window}-tick vol {state.short.value:.4%} is {ratio:.1f}x the "
                f"{self.params.long_window}-tick vol {state.long.value:.4%} (threshold {threshold:.1f}x)"
            ),
            now=now,
        )
