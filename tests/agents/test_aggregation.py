"""Aggregation: confidence-weighted, time-decayed, conflicting signals net out."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from sapphire.agents import aggregation, market
from tests.agents import series

NOW = series.START


def signal(
    agent: str,
    direction: str,
    strength: str,
    confidence: str,
    *,
    age: float = 0,
    role: str = "momentum",
    horizon: int = 600,
) -> market.Signal:
    return market.Signal(
        agent=agent,
        role=role,
        symbol="BTC-USD",
        direction=market.Direction(direction),
        strength=Decimal(strength),
        confidence=Decimal(confidence),
        horizon_seconds=horizon,
        rationale="test",
        ts=NOW - timedelta(seconds=age),
    )


def test_equal_and_opposite_signals_net_to_zero_with_full_conflict() -> None:
    consensus = aggregation.aggregate(
        [signal("a", "long", "0.8", "0.9"), signal("b", "short", "-0.8", "0.9")],
        symbol="BTC-USD",
        now=NOW,
        half_life_seconds=60,
    )
    assert consensus.score == 0
    assert consensus.conflict == Decimal("0.5")
    assert consensus.direction is market.Direction.FLAT


def test_one_unsure_analyst_cannot_command_a_full_position() -> None:
    consensus = aggregation.aggregate(
        [signal("a", "long", "1", "0.2")], symbol="BTC-USD", now=NOW, half_life_seconds=60
    )
    assert consensus.score == Decimal("0.2")


def test_confidence_weights_the_mean_of_many() -> None:
    consensus = aggregation.aggregate(
        [signal("a", "long", "1", "1"), signal("b", "short", "-1", "0.5"), signal("c", "long", "0.5", "1")],
        symbol="BTC-USD",
        now=NOW,
        half_life_seconds=60,
    )
    assert consensus.score == ((Decimal(1) - Decimal("0.5") + Decimal("0.5")) / Decimal("2.5")).quantize(
        Decimal("1e-8")
    )


def test_old_signals_decay_by_half_lives_and_expire_after_their_horizon() -> None:
    fresh = aggregation.aggregate(
        [signal("a", "long", "1", "1", age=0)], symbol="BTC-USD", now=NOW, half_life_seconds=60
    )
    old = aggregation.aggregate(
        [signal("a", "long", "1", "1", age=120)], symbol="BTC-USD", now=NOW, half_life_seconds=60
    )
    expired = aggregation.aggregate(
        [signal("a", "long", "1", "1", age=700)], symbol="BTC-USD", now=NOW, half_life_seconds=60
    )
    assert fresh.score == 1
    assert old.score == Decimal("0.25")
    assert expired.score == 0
    assert not expired.votes


def test_only_the_latest_signal_of_each_agent_counts() -> None:
    consensus = aggregation.aggregate(
        [signal("a", "long", "1", "1", age=10), signal("a", "short", "-1", "1", age=5)],
        symbol="BTC-USD",
        now=NOW,
        half_life_seconds=6000,
    )
    assert len(consensus.votes) == 1
    assert consensus.score < 0


def test_a_volatility_risk_off_damps_instead_of_voting() -> None:
    consensus = aggregation.aggregate(
        [signal("a", "long", "1", "1"), signal("v", "flat", "0", "0.75", role="volatility")],
        symbol="BTC-USD",
        now=NOW,
        half_life_seconds=60,
    )
    assert consensus.risk_off == Decimal("0.75")
    assert consensus.score == Decimal("0.25")


def test_decay_rejects_a_non_positive_half_life() -> None:
    with pytest.raises(ValueError, match="half_life_seconds"):
        aggregation.decay(age_seconds=1, half_life_seconds=0)
