"""Strategist: a thesis per symbol from the market summary and the other agents' signals.

Without a model it is a deterministic ensemble: the same confidence-weighted, time-decayed
aggregation the executor uses (:mod:`sapphire.agents.aggregation`), over every agent but
itself, with a rationale naming who pulls which way. With a model it hands the LLM that
summary and those signals and asks for a structured thesis; on any model failure it
abstains.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from datetime import datetime

import pydantic

from sapphire.agents import aggregation, indicators, market
from sapphire.agents.analysts import base
from sapphire.agents.llm import base as llm


@dataclass(frozen=True)
class StrategistParams:
    half_life_seconds: float = 300.0
    min_weight: float = 0.2
    deadband: float = 0.05
    horizon_seconds: int = 900
    summary_window: int = 100
    max_signals: int = 200


class Thesis(pydantic.BaseModel):
    """What the LLM must answer."""

    direction: market.AnsweredDirection
    strength: float = pydantic.Field(ge=-1, le=1)
    confidence: float = pydantic.Field(ge=0, le=1)
    horizon_seconds: int = pydantic.Field(gt=0, le=86_400)
    thesis: str = pydantic.Field(min_length=1, max_length=2000)


@dataclass
class _Summary:
    vol: indicators.RealizedVolatility
    first: float = 0.0
    last: float = 0.0
    ticks: int = 0


SYSTEM_PROMPT = (
    "You are the strategist of a multi-agent trading desk. Given a market summary and the desk's "
    "recent analyst signals for one symbol, write a thesis. Answer with one JSON object: direction "
    "(long, short or flat), strength (-1..1, sign agreeing with direction), confidence (0..1), "
    "horizon_seconds and thesis (two sentences at most). When the evidence conflicts or is thin, "
    "answer flat with low confidence."
)


class StrategistAnalyst(base.Analyst):
    role = "strategist"

    def __init__(
        self, *, agent: str, model: llm.StructuredModel | None = None, params: StrategistParams | None = None
    ) -> None:
        super().__init__(agent=agent, model=model)
        self.params = params or StrategistParams()
        self._signals: dict[str, deque[market.Signal]] = {}
        self._summaries: dict[str, _Summary] = {}

    def observe(self, tick: market.Tick) -> None:
        price = float(tick.mid if tick.bid > 0 and tick.ask > 0 else tick.last)
        if price <= 0:
            return
        summary = self._summaries.get(tick.symbol)
        if summary is None:
            summary = _Summary(indicators.RealizedVolatility(self.params.summary_window), first=price)
            self._summaries[tick.symbol] = summary
        summary.vol.update(price)
        summary.last = price
        summary.ticks += 1

    def observe_signal(self, signal: market.Signal) -> None:
        if signal.agent == self.agent:
            return  # its own theses must not feed back into the next one
        bucket = self._signals.setdefault(signal.symbol, deque(maxlen=self.params.max_signals))
        bucket.append(signal)

    def forget(self, symbol: str) -> None:
        self._signals.pop(symbol, None)
        self._summaries.pop(symbol, None)

    def consensus(self, symbol: str, now: datetime) -> aggregation.Consensus:
        return aggregation.aggregate(
            self._signals.get(symbol, ()),
            symbol=symbol,
            now=now,
            half_life_seconds=self.params.half_life_seconds,
            exclude_agent=self.agent,
        )

    def evaluate(self, symbol: str, now: datetime) -> market.Signal | None:
        consensus = self.consensus(symbol, now)
        if float(consensus.weight) < self.params.min_weight and consensus.risk_off == 0:
            return None
        score = float(consensus.score)
        pulls = ", ".join(
            f"{v.role}/{v.agent} {v.direction.value} {float(v.strength):+.2f}@{float(v.weight):.2f}"
            for v in sorted(consensus.votes, key=lambda v: -v.weight)[:6]
        )
        return market.make_signal(
            agent=self.agent,
            role=self.role,
            symbol=symbol,
            score=score,
            confidence=min(float(consensus.weight), 1.0) * (1 - 2 * float(consensus.conflict)) or 0.05,
            horizon_seconds=self.params.horizon_seconds,
            rationale=(
                f"ensemble of {len(consensus.votes)} agent(s): net {score:+.2f}, conflict "
                f"{float(consensus.conflict):.2f}, risk-off {float(consensus.risk_off):.2f}; {pulls}"
            ),
            now=now,
            deadband=self.params.deadband,
        )

    def summary(self, symbol: str) -> dict[str, object]:
        summary = self._summaries.get(symbol)
        if summary is None or summary.ticks == 0:
            return {"symbol": symbol, "ticks": 0}
        return {
            "symbol": symbol,
            "ticks": summary.ticks,
            "last_mid": round(summary.last, 8),
            "return_since_start": round(summary.last / summary.first - 1, 6) if summary.first else None,
            "per_tick_volatility": round(summary.vol.value, 8),
        }

    async def assess(self, symbol: str, now: datetime) -> market.Signal | None:
        if self.model is None:
            return self.evaluate(symbol, now)
        consensus = self.consensus(symbol, now)
        if not consensus.votes:
            return None  # nothing to synthesize; do not spend a model call
        recent = [
            {
                "agent": s.agent,
                "role": s.role,
                "direction": s.direction.value,
                "strength": str(s.strength),
                "confidence": str(s.confidence),
                "age_seconds": round((now - s.ts).total_seconds()),
                "rationale": s.rationale[:300],
            }
            for s in aggregation.latest_per_agent(self._signals.get(symbol, ()), symbol)
            if s.agent != self.agent
        ]
        thesis = await self.model.ask(
            system=SYSTEM_PROMPT,
            prompt=(
                f"Market summary: {json.dumps(self.summary(symbol))}\n"
                f"Deterministic ensemble: net {consensus.score}, conflict {consensus.conflict}, "
                f"risk-off {consensus.risk_off}\nSignals: {json.dumps(recent, indent=1)}"
            ),
            schema=Thesis,
        )
        if thesis is None:
            return None
        sign = thesis.direction.sign
        return market.make_signal(
            agent=self.agent,
            role=self.role,
            symbol=symbol,
            score=sign * abs(thesis.strength),
            confidence=thesis.confidence,
            horizon_seconds=thesis.horizon_seconds,
            rationale=f"thesis: {thesis.thesis}",
            model=self.model.label,
            now=now,
        )
