"""Momentum: trade with the trend when a fast EMA runs away from a slow one.

The gap between the EMAs is scaled by realized volatility, a t-statistic of sorts, so that
a 1% drift means a lot in a quiet market and little in a wild one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sapphire.agents import indicators, market
from sapphire.agents.analysts import base
from sapphire.agents.llm import base as llm


@dataclass
class _State:
    fast: indicators.Ema
    slow: indicators.Ema
    vol: indicators.RealizedVolatility
    ticks: int = 0


@dataclass(frozen=True)
class MomentumParams:
    fast_span: int = 12
    slow_span: int = 48
    vol_window: int = 48
    deadband: float = 0.15
    horizon_seconds: int = 300
    vol_floor: float = 1e-5
    """Per-tick volatility below this (a perfectly smooth series) is treated as this."""


class MomentumAnalyst(base.Analyst):
    role = "momentum"

    def __init__(
        self, *, agent: str, model: llm.StructuredModel | None = None, params: MomentumParams | None = None
    ) -> None:
        super().__init__(agent=agent, model=model)
        self.params = params or MomentumParams()
        self._states: dict[str, _State] = {}

    def _state(self, symbol: str) -> _State:
        state = self._states.get(symbol)
        if state is None:
            p = self.params
            state = _State(
                indicators.Ema(p.fast_span),
                indicators.Ema(p.slow_span),
                indicators.RealizedVolatility(p.vol_window),
            )
            self._states[symbol] = state
        return state

    def observe(self, tick: market.Tick) -> None:
        price = float(tick.mid if tick.bid > 0 and tick.ask > 0 else tick.last)
        if price <= 0:
            return
        state = self._state(tick.symbol)
        state.fast.update(price)
        state.slow.update(price)
        state.vol.update(price)
        state.ticks += 1

    def forget(self, symbol: str) -> None:
        self._states.pop(symbol, None)

    def evaluate(self, symbol: str, now: datetime) -> market.Signal | None:
        state = self._states.get(symbol)
        if (
            state is None
            or state.ticks < self.params.slow_span
            or not state.fast.value
            or not state.slow.value
        ):
            return None
        gap = (state.fast.value - state.slow.value) / state.slow.value
        vol = max(state.vol.value, self.params.vol_floor)
        t_stat = gap / (vol * math.sqrt(self.params.fast_span))
        score = math.tanh(t_stat / 2)
        if abs(score) < self.params.deadband:
            return None
        return market.make_signal(
            agent=self.agent,
            role=self.role,
            symbol=symbol,
            score=score,
            confidence=min(1.0, abs(t_stat) / 4),
            horizon_seconds=self.params.horizon_seconds,
            rationale=(
                f"EMA{self.params.fast_span} {state.fast.value:.6g} vs EMA{self.params.slow_span} "
                f"{state.slow.value:.6g} ({gap:+.3%}); per-tick vol {vol:.4%}; trend t-stat {t_stat:+.2f}"
            ),
            now=now,
        )
