"""Each analyst on a synthetic series whose right answer is known."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from sapphire.agents import market
from sapphire.agents.analysts import (
    build_analyst,
    mean_reversion,
    microstructure,
    momentum,
    sentiment,
    strategist,
    volatility,
)
from tests.agents import series

NOW = series.START + timedelta(hours=1)


def feed(
    analyst: momentum.MomentumAnalyst
    | mean_reversion.MeanReversionAnalyst
    | volatility.VolatilityAnalyst
    | microstructure.MicrostructureAnalyst
    | strategist.StrategistAnalyst,
    prices: list[float],
    *,
    sides: list[int] | None = None,
) -> None:
    for tick in series.prices_to_ticks("BTC-USD", prices, sides=sides):
        analyst.observe(tick)


class TestMomentum:
    def test_a_steady_uptrend_is_long(self) -> None:
        analyst = momentum.MomentumAnalyst(agent="mom")
        feed(analyst, series.uptrend())
        signal = analyst.evaluate("BTC-USD", NOW)
        assert signal is not None
        assert signal.direction is market.Direction.LONG
        assert signal.strength > Decimal("0.5")
        assert "EMA12" in signal.rationale

    def test_a_steady_downtrend_is_short(self) -> None:
        analyst = momentum.MomentumAnalyst(agent="mom")
        feed(analyst, series.uptrend(drift=-0.0005))
        signal = analyst.evaluate("BTC-USD", NOW)
        assert signal is not None
        assert signal.direction is market.Direction.SHORT
        assert signal.strength < 0

    def test_it_abstains_before_warm_up_and_on_a_flat_market(self) -> None:
        analyst = momentum.MomentumAnalyst(agent="mom")
        feed(analyst, series.uptrend(n=10))
        assert analyst.evaluate("BTC-USD", NOW) is None
        flat = momentum.MomentumAnalyst(agent="mom")
        feed(flat, [100.0] * 300)
        assert flat.evaluate("BTC-USD", NOW) is None


class TestMeanReversion:
    def test_a_spike_above_a_stable_level_is_faded_short(self) -> None:
        analyst = mean_reversion.MeanReversionAnalyst(agent="mr")
        feed(analyst, [*series.mean_reverting(), 100.5])
        signal = analyst.evaluate("BTC-USD", NOW)
        assert signal is not None
        assert signal.direction is market.Direction.SHORT
        assert "sd from its 60-tick mean" in signal.rationale

    def test_a_dip_is_bought(self) -> None:
        analyst = mean_reversion.MeanReversionAnalyst(agent="mr")
        feed(analyst, [*series.mean_reverting(), 99.5])
        signal = analyst.evaluate("BTC-USD", NOW)
        assert signal is not None
        assert signal.direction is market.Direction.LONG

    def test_no_stretch_no_signal(self) -> None:
        analyst = mean_reversion.MeanReversionAnalyst(agent="mr")
        feed(analyst, [*series.mean_reverting(), 100.0])
        assert analyst.evaluate("BTC-USD", NOW) is None


class TestVolatility:
    def test_a_volatility_explosion_is_a_confident_risk_off(self) -> None:
        analyst = volatility.VolatilityAnalyst(agent="vol")
        calm = series.random_walk(n=250, noise=0.0005)
        wild = series.random_walk(n=20, start=calm[-1], noise=0.01, seed=9)
        feed(analyst, calm + wild)
        signal = analyst.evaluate("BTC-USD", NOW)
        assert signal is not None
        assert signal.direction is market.Direction.FLAT
        assert signal.strength == 0
        assert signal.confidence >= Decimal("0.5")
        assert signal.rationale.startswith("risk-off")

    def test_a_calm_regime_abstains(self) -> None:
        analyst = volatility.VolatilityAnalyst(agent="vol")
        feed(analyst, series.random_walk(n=300, noise=0.001))
        ratio = analyst.regime_ratio("BTC-USD")
        assert ratio is not None
        assert 0.5 < ratio < 1.5
        assert analyst.evaluate("BTC-USD", NOW) is None


class TestMicrostructure:
    def test_persistent_buying_at_the_ask_is_long_and_toxic(self) -> None:
        analyst = microstructure.MicrostructureAnalyst(agent="micro")
        prices = [100.0] * 120
        feed(analyst, prices, sides=[1 if i % 5 else -1 for i in range(120)])
        signal = analyst.evaluate("BTC-USD", NOW)
        assert signal is not None
        assert signal.direction is market.Direction.LONG
        assert "VPIN 0.6" in signal.rationale

    def test_balanced_flow_abstains(self) -> None:
        analyst = microstructure.MicrostructureAnalyst(agent="micro")
        feed(analyst, [100.0] * 120, sides=[1 if i % 2 else -1 for i in range(120)])
        assert analyst.evaluate("BTC-USD", NOW) is None

    def test_selling_at_the_bid_is_short(self) -> None:
        analyst = microstructure.MicrostructureAnalyst(agent="micro")
        feed(analyst, [100.0] * 60, sides=[-1] * 60)
        signal = analyst.evaluate("BTC-USD", NOW)
        assert signal is not None
        assert signal.direction is market.Direction.SHORT


class TestSentiment:
    def headline(self, text: str, minutes_ago: int = 5, symbol: str | None = "BTC-USD") -> market.Headline:
        return market.Headline(symbol=symbol, text=text, ts=NOW - timedelta(minutes=minutes_ago))

    def test_good_news_is_long_and_bad_news_short(self) -> None:
        good = sentiment.SentimentAnalyst(agent="news")
        for text in (
            "Bitcoin rallies as ETF inflows hit a record high",
            "Analysts upbeat: strong gains expected",
        ):
            good.observe_headline(self.headline(text))
        signal = good.evaluate("BTC-USD", NOW)
        assert signal is not None
        assert signal.direction is market.Direction.LONG
        assert "VADER" in signal.rationale

        bad = sentiment.SentimentAnalyst(agent="news")
        bad.observe_headline(self.headline("Exchange hacked, crash fears spread as losses mount"))
        signal = bad.evaluate("BTC-USD", NOW)
        assert signal is not None
        assert signal.direction is market.Direction.SHORT

    def test_stale_or_unrelated_news_abstains(self) -> None:
        analyst = sentiment.SentimentAnalyst(agent="news")
        analyst.observe_headline(self.headline("Bitcoin soars to a glorious record", minutes_ago=60 * 24))
        analyst.observe_headline(self.headline("Ether soars to a glorious record", symbol="ETH-USD"))
        assert analyst.evaluate("BTC-USD", NOW) is None

    def test_market_wide_headlines_count_for_every_symbol(self) -> None:
        analyst = sentiment.SentimentAnalyst(agent="news")
        analyst.observe_headline(
            self.headline("Markets plunge in panic selling, terrible losses", symbol=None)
        )
        signal = analyst.evaluate("ETH-USD", NOW)
        assert signal is not None
        assert signal.direction is market.Direction.SHORT


class TestStrategist:
    def signal(
        self, agent: str, role: str, direction: str, strength: str, confidence: str, age: int = 10
    ) -> market.Signal:
        return market.Signal(
            agent=agent,
            role=role,
            symbol="BTC-USD",
            direction=market.Direction(direction),
            strength=Decimal(strength),
            confidence=Decimal(confidence),
            horizon_seconds=600,
            rationale="test",
            ts=NOW - timedelta(seconds=age),
        )

    def test_the_ensemble_follows_the_confident_majority_and_names_it(self) -> None:
        analyst = strategist.StrategistAnalyst(agent="boss")
        analyst.observe_signal(self.signal("mom", "momentum", "long", "0.8", "0.9"))
        analyst.observe_signal(self.signal("micro", "microstructure", "long", "0.5", "0.6"))
        analyst.observe_signal(self.signal("mr", "mean-reversion", "short", "-0.4", "0.3"))
        thesis = analyst.evaluate("BTC-USD", NOW)
        assert thesis is not None
        assert thesis.direction is market.Direction.LONG
        assert "momentum/mom long" in thesis.rationale

    def test_its_own_signals_never_feed_back(self) -> None:
        analyst = strategist.StrategistAnalyst(agent="boss")
        analyst.observe_signal(self.signal("boss", "strategist", "long", "1", "1"))
        assert analyst.evaluate("BTC-USD", NOW) is None

    def test_risk_off_damps_the_thesis_to_flat(self) -> None:
        analyst = strategist.StrategistAnalyst(agent="boss")
        analyst.observe_signal(self.signal("mom", "momentum", "long", "0.8", "0.9"))
        analyst.observe_signal(self.signal("vol", "volatility", "flat", "0", "1"))
        thesis = analyst.evaluate("BTC-USD", NOW)
        assert thesis is not None
        assert thesis.direction is market.Direction.FLAT


@pytest.mark.parametrize(
    "role", ["momentum", "mean-reversion", "volatility", "microstructure", "sentiment", "strategist"]
)
def test_every_role_builds_and_abstains_without_data(role: str) -> None:
    analyst = build_analyst(role, agent="a")
    assert analyst.role == role
    assert analyst.evaluate("BTC-USD", NOW) is None


def test_an_unknown_role_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="role: unknown analyst role 'oracle'"):
        build_analyst("oracle", agent="a")
