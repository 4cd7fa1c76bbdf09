"""Incremental indicators agree with the textbook computations over the same window."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sapphire.agents import indicators


@given(
    values=st.lists(st.floats(min_value=1, max_value=1e6, allow_nan=False), min_size=2, max_size=200),
    window=st.integers(min_value=2, max_value=30),
)
@settings(max_examples=200, deadline=None)
def test_rolling_stats_match_the_window_recomputed_from_scratch(values: list[float], window: int) -> None:
    stats = indicators.RollingStats(window)
    for value in values:
        stats.update(value)
    tail = values[-window:]
    assert stats.mean == pytest.approx(statistics.fmean(tail), rel=1e-6, abs=max(values) * 1e-12)
    if len(tail) > 1:
        expected = statistics.variance(tail)
        assert stats.variance == pytest.approx(expected, rel=1e-6, abs=max(values) ** 2 * 1e-12)


def test_ema_converges_to_a_constant_and_follows_the_span() -> None:
    ema = indicators.Ema(9)
    assert ema.alpha == pytest.approx(0.2)
    ema.update(10.0)
    assert ema.update(20.0) == pytest.approx(12.0)
    for _ in range(200):
        ema.update(5.0)
    assert ema.value == pytest.approx(5.0)


def test_zscore_of_a_spike_is_large_and_of_the_mean_is_zero() -> None:
    z = indicators.ZScore(50)
    rng = random.Random(0)
    for _ in range(50):
        z.update(100 + rng.gauss(0, 1))
    assert z.update(110) > 5


def test_realized_volatility_recovers_the_generating_sigma() -> None:
    vol = indicators.RealizedVolatility(2000)
    rng = random.Random(7)
    price = 100.0
    for _ in range(2001):
        price *= math.exp(rng.gauss(0, 0.01))
        vol.update(price)
    assert vol.ready
    assert vol.value == pytest.approx(0.01, rel=0.05)


def test_trade_classification_follows_the_quote_then_the_tick_rule() -> None:
    assert indicators.classify_trade(last=10.01, bid=9.99, ask=10.01, previous_last=None) == 1
    assert indicators.classify_trade(last=9.99, bid=9.99, ask=10.01, previous_last=None) == -1
    assert indicators.classify_trade(last=10.00, bid=9.99, ask=10.01, previous_last=9.98) == 1
    assert indicators.classify_trade(last=10.00, bid=9.99, ask=10.01, previous_last=10.00) == 0


def test_order_flow_imbalance_only_remembers_its_window() -> None:
    ofi = indicators.OrderFlowImbalance(4)
    for _ in range(4):
        ofi.update(1, 1.0)
    assert ofi.value == 1.0
    for _ in range(4):
        ofi.update(-1, 1.0)
    assert ofi.value == -1.0
    ofi.update(1, 2.0)
    assert ofi.value == pytest.approx(-1 / 5)


def test_vpin_is_one_for_one_sided_flow_and_zero_for_balanced_flow() -> None:
    one_sided = indicators.Vpin(bucket_volume=10, buckets=5)
    for _ in range(100):
        one_sided.update(1, 1.0)
    assert one_sided.buckets == 5
    assert one_sided.value == pytest.approx(1.0)

    balanced = indicators.Vpin(bucket_volume=10, buckets=5)
    for i in range(100):
        balanced.update(1 if i % 2 else -1, 1.0)
    assert balanced.value == pytest.approx(0.0)


def test_vpin_spills_a_large_trade_across_buckets() -> None:
    vpin = indicators.Vpin(bucket_volume=10, buckets=10)
    vpin.update(1, 35.0)
    assert vpin.buckets == 3
    vpin.update(-1, 5.0)
    assert vpin.buckets == 4
    assert vpin.value == pytest.approx((1 + 1 + 1 + 0) / 4)
