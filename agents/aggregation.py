"""Signal aggregation: many analysts' opinions about one symbol become one score.

Pure and synchronous, shared by the executor (to size positions) and the strategist's
deterministic ensemble. The rules, in the order they apply:

* Only each agent's latest signal per symbol counts, so a chatty analyst gets no extra vote.
* A signal older than its own ``horizon_seconds`` has expired and counts for nothing.
* Each vote weighs ``confidence * 0.5 ** (age / half_life)``: fresh, confident views dominate.
* Long and short votes net out; flat votes add weight but no direction, pulling toward zero.
* A flat vote from the volatility role is a risk-off call. It damps the whole score by its
  weight instead of voting: "the regime is dangerous" is not an opinion about direction.
* The score is ``sum strength·w / max(sum w, 1)``. Below a total weight of one the score shrinks,
  so one unsure analyst cannot command a full position; above it, it is a weighted mean.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sapphire.agents import market

RISK_OFF_ROLE = "volatility"
_GRID = Decimal("0.00000001")
_ONE = Decimal(1)
_ZERO = Decimal(0)


@dataclass(frozen=True)
class Vote:
    """One agent's surviving contribution: its signed strength and its decayed weight."""

    agent: str
    role: str
    direction: market.Direction
    strength: Decimal
    weight: Decimal


@dataclass(frozen=True)
class Consensus:
    """The aggregate view on one symbol."""

    symbol: str
    score: Decimal
    """Target exposure as a fraction of the position limit, -1..1 (after risk-off damping)."""
    weight: Decimal
    """Total decayed confidence behind the score (risk-off votes excluded)."""
    conflict: Decimal
    """Weight on the losing side over total directional weight, 0 (unanimous) .. 0.5 (split)."""
    risk_off: Decimal
    """Strongest decayed risk-off weight, 0..1; the score has been multiplied by ``1 - risk_off``."""
    votes: tuple[Vote, ...]

    @property
    def direction(self) -> market.Direction:
        if self.score > 0:
            return market.Direction.LONG
        if self.score < 0:
            return market.Direction.SHORT
        return market.Direction.FLAT


def decay(*, age_seconds: float, half_life_seconds: float) -> Decimal:
    """``0.5 ** (age / half_life)`` as a Decimal in (0, 1]; a future timestamp counts as now."""
    if half_life_seconds <= 0:
        raise ValueError("half_life_seconds must be > 0")
    return _decay(max(age_seconds, 0.0), half_life_seconds)


@functools.lru_cache(maxsize=4096)
def _decay(age: float, half_life_seconds: float) -> Decimal:
    # A Decimal power with a fractional exponent costs tens of microseconds, and the executor
    # asks for it per vote per decision; ages repeat (a backtest's clock moves in steps), so
    # the pure result is remembered. Decimal is immutable: sharing it is safe.
    return (Decimal("0.5") ** (Decimal(repr(age)) / Decimal(repr(half_life_seconds)))).quantize(_GRID)


def latest_per_agent(signals: Iterable[market.Signal], symbol: str) -> list[market.Signal]:
    """Each agent's most recent signal about ``symbol``."""
    latest: dict[str, market.Signal] = {}
    for signal in signals:
        if signal.symbol != symbol:
            continue
        seen = latest.get(signal.agent)
        if seen is None or signal.ts >= seen.ts:
            latest[signal.agent] = signal
    return list(latest.values())


def aggregate(
    signals: Iterable[market.Signal],
    *,
    symbol: str,
    now: datetime,
    half_life_seconds: float,
    exclude_agent: str | None = None,
) -> Consensus:
    """Combine the signals about ``symbol`` into a :class:`Consensus` (see the module rules)."""
    votes: list[Vote] = []
    numerator = total = long_weight = short_weight = risk_off = _ZERO
    for signal in latest_per_agent(signals, symbol):
        if signal.agent == exclude_agent:
            continue
        age = (now - signal.ts).total_seconds()
        if age > signal.horizon_seconds:
            continue
        if half_life_seconds <= 0:  # decay()'s check, inlined with it: this runs per vote per decision
            raise ValueError("half_life_seconds must be > 0")
        weight = (signal.confidence * _decay(max(age, 0.0), half_life_seconds)).quantize(_GRID)
        if weight <= 0:
            continue
        # The sign comes from the direction: a malformed "long, -0.5" still votes long.
        strength = abs(signal.strength) * signal.direction.sign
        if signal.direction is market.Direction.FLAT and signal.role == RISK_OFF_ROLE:
            risk_off = max(risk_off, min(weight, _ONE))
        else:
            numerator += strength * weight
            total += weight
            if strength > 0:
                long_weight += weight
            elif strength < 0:
                short_weight += weight
        votes.append(Vote(signal.agent, signal.role, signal.direction, strength, weight))
    score = numerator / max(total, _ONE) * (_ONE - risk_off)
    directional = long_weight + short_weight
    conflict = min(long_weight, short_weight) / directional if directional > 0 else _ZERO
    return Consensus(
        symbol=symbol,
        score=max(-_ONE, min(_ONE, score)).quantize(_GRID),
        weight=total.quantize(_GRID),
        conflict=conflict.quantize(_GRID),
        risk_off=risk_off,
        votes=tuple(votes),
    )
