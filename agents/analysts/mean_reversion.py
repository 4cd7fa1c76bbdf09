"""Mean reversion: fade a price that has stretched too many standard deviations from its mean.

Stretch is measured by the rolling z-score of the mid. A stretch that coincides with a
strong trend (the rolling mean itself moving fast) is less likely to snap back, so the
confidence is cut when the mean drifts by more than the band per window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sapphire.agents import indicators, market
from sapphire.agents.analysts import base
from sapphire.agents.llm import base as llm


@dataclass(frozen=True)
class MeanReversionParams:
    window: int = 60
    entry_z: float = 2.0
    horizon_seconds: int = 180


@dataclass
class _State:
    zscore: indicators.ZScore
    trend: indicators.Ema
    last: float = 0.0


class MeanReversionAnalyst(base.Analyst):
    role = "mean-reversion"

    def __init__(
        self,
        *,
        agent: str,
        model: llm.StructuredModel | None = None,
        params: MeanReversionParams | None = None,
    ) -> None:
        super().__init__(agent=agent, model=model)
        self.params = params or MeanReversionParams()
        self._states: dict[str, _State] = {}

    def observe(self, tick: market.Tick) -> None:
        price = float(tick.mid if tick.bid > 0 and tick.ask > 0 else tick.last)
        if price <= 0:
            return
        state = self._states.get(tick.symbol)
        if state is None:
            state = _State(indicators.ZScore(self.params.window), indicators.Ema(self.params.window))
            self._states[tick.symbol] = state
        state.zscore.update(price)
        state.trend.update(price)
        state.last = price

    def forget(self, symbol: str) -> None:
        self._states.pop(symbol, None)

    def evaluate(self, symbol: str, now: datetime) -> market.Signal | None:
        state = self._states.get(symbol)
        if state is None or not state.zscore.stats.full:
            return None
        z = state.zscore.value
        if abs(z) < self.params.entry_z:
            return None
        stats = state.zscore.stats
        # How far the slow mean sits from the window mean, in window standard deviations.
        drift = abs((state.trend.value or stats.mean) - stats.mean) / stats.std if stats.std > 0 else 0.0
        trend_penalty = 1.0 / (1.0 + drift)
        score = -math.tanh(z / self.params.entry_z)
        return market.make_signal(
            agent=self.agent,
            role=self.role,
            symbol=symbol,
            score=score,
            confidence=min(1.0, abs(z) / (2 * self.params.entry_z)) * trend_penalty,
            horizon_seconds=self.params.horizon_seconds,
            rationale=(
                f"mid {state.last:.6g} is {z:+.2f} sd from its {self.params.window}-tick mean "
                f"{stats.mean:.6g} (sd {stats.std:.4g}); expect reversion"
                + (f"; trend drift {drift:.2f} sd cuts confidence" if drift > 0.5 else "")
            ),
            now=now,
        )
