"""Microstructure: follow aggressive order flow, weighted by how informed it looks (VPIN).

Each tick's print is signed by the Lee-Ready rule; order-flow imbalance over the last
trades gives the direction, and VPIN over equal-volume buckets says how toxic (informed)
the flow is: high VPIN makes the imbalance more credible. The bucket size calibrates itself
from the first trades' mean size, since trade sizes differ by orders of magnitude between
instruments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sapphire.agents import indicators, market
from sapphire.agents.analysts import base
from sapphire.agents.llm import base as llm


@dataclass(frozen=True)
class MicrostructureParams:
    ofi_window: int = 50
    min_trades: int = 20
    entry_imbalance: float = 0.3
    bucket_trades: int = 10
    """Bucket volume = this many mean-sized trades."""
    vpin_buckets: int = 20
    horizon_seconds: int = 60


@dataclass
class _State:
    ofi: indicators.OrderFlowImbalance
    vpin: indicators.Vpin | None = None
    previous_last: float | None = None
    calibration_volume: float = 0.0
    calibration_trades: int = 0


class MicrostructureAnalyst(base.Analyst):
    role = "microstructure"

    def __init__(
        self,
        *,
        agent: str,
        model: llm.StructuredModel | None = None,
        params: MicrostructureParams | None = None,
    ) -> None:
        super().__init__(agent=agent, model=model)
        self.params = params or MicrostructureParams()
        self._states: dict[str, _State] = {}

    def observe(self, tick: market.Tick) -> None:
        size = float(tick.size)
        if size <= 0:
            return  # a quote update without a trade carries no flow
        state = self._states.get(tick.symbol)
        if state is None:
            state = _State(indicators.OrderFlowImbalance(self.params.ofi_window))
            self._states[tick.symbol] = state
        last = float(tick.last)
        sign = indicators.classify_trade(
            last=last, bid=float(tick.bid), ask=float(tick.ask), previous_last=state.previous_last
        )
        state.previous_last = last
        state.ofi.update(sign, size)
        if state.vpin is None:
            state.calibration_volume += size
            state.calibration_trades += 1
            if state.calibration_trades >= self.params.min_trades:
                mean_size = state.calibration_volume / state.calibration_trades
                state.vpin = indicators.Vpin(
                    bucket_volume=mean_size * self.params.bucket_trades, buckets=self.params.vpin_buckets
                )
        else:
            state.vpin.update(sign, size)

    def forget(self, symbol: str) -> None:
        self._states.pop(symbol, None)

    def evaluate(self, symbol: str, now: datetime) -> market.Signal | None:
        state = self._states.get(symbol)
        if state is None or state.ofi.count < self.params.min_trades:
            return None
        imbalance = state.ofi.value
        if abs(imbalance) < self.params.entry_imbalance:
            return None
        vpin = state.vpin.value if state.vpin is not None and state.vpin.buckets else 0.0
        return market.make_signal(
            agent=self.agent,
            role=self.role,
            symbol=symbol,
            score=imbalance,
            confidence=min(1.0, 0.5 * abs(imbalance) + 0.5 * vpin),
            horizon_seconds=self.params.horizon_seconds,
            rationale=(
                f"order-flow imbalance {imbalance:+.2f} over the last {state.ofi.count} trades; "
                f"VPIN {vpin:.2f} over {state.vpin.buckets if state.vpin else 0} volume buckets"
            ),
            now=now,
        )
