"""The executor's decisions: aggregate, size within limits, deterministic ids, HALTED stops."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import TypeVar

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sapphire.agents import executor, market, sizing
from sapphire.domain.risk import NotionalLimits
from tests.agents import series

NOW = series.START
LIMITS = NotionalLimits(
    max_order_notional=Decimal(2_000),
    max_position_notional=Decimal(5_000),
    max_gross_exposure=Decimal(8_000),
    max_daily_loss=Decimal(500),
)
SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD")
T = TypeVar("T", bound=pydantic.BaseModel)


def make_executor(**overrides: object) -> executor.Executor:
    config = executor.ExecutorConfig(agent="grok", limits=LIMITS, epoch="e1", **overrides)  # type: ignore[arg-type]
    ex = executor.Executor(config)
    ex.on_instruments(sizing.Instrument(s, Decimal("0.01"), Decimal("0.001")) for s in SYMBOLS)
    for symbol in SYMBOLS:
        ex.on_tick(series.tick(symbol, 100.0, at=NOW))
    ex.on_portfolio(equity=Decimal(100_000), positions={}, marks={}, now=NOW)
    ex.on_day_start(NOW.date(), Decimal(100_000))
    return ex


def signal(
    agent: str, symbol: str, direction: str, strength: str, confidence: str = "1", role: str = "momentum"
) -> market.Signal:
    return market.Signal(
        agent=agent,
        role=role,
        symbol=symbol,
        direction=market.Direction(direction),
        strength=Decimal(strength),
        confidence=Decimal(confidence),
        horizon_seconds=600,
        rationale="test",
        ts=NOW,
    )


def test_a_confident_long_consensus_buys_within_the_order_limit() -> None:
    ex = make_executor()
    ex.on_signal(signal("mom", "BTC-USD", "long", "1"))
    order = ex.decide("BTC-USD", NOW)
    assert order is not None
    body = order.to_request()
    assert body["side"] == "buy"
    assert body["type"] == "limit"
    assert body["time_in_force"] == "ioc"
    assert Decimal(body["quantity"]) * Decimal(body["limit_price"]) <= LIMITS.max_order_notional
    assert body["agent"] == "grok"


def test_an_entry_carries_its_bracket_and_a_reduction_carries_none() -> None:
    protection = executor.Protection(trailing_stop_bps=Decimal(80), take_profit_bps=Decimal("250.5"))
    ex = make_executor(protection=protection)
    ex.on_signal(signal("mom", "BTC-USD", "long", "1"))
    entry = ex.decide("BTC-USD", NOW)
    assert entry is not None
    assert entry.to_request()["attached"] == {"trail_bps": "80", "take_profit_bps": "250.5"}
    ex.on_portfolio(equity=Decimal(100_000), positions={"BTC-USD": Decimal(40)}, marks={}, now=NOW)
    ex.on_signal(signal("mom", "BTC-USD", "short", "0.1"))
    reduction = ex.decide("BTC-USD", NOW + timedelta(seconds=1))
    assert reduction is not None
    assert reduction.plan.side == "sell"
    assert Decimal(reduction.plan.quantity) <= 40
    assert "attached" not in reduction.to_request()


def test_a_fixed_and_a_trailing_stop_are_exclusive() -> None:
    with pytest.raises(ValueError, match="exclusive"):
        executor.Protection(stop_loss_bps=Decimal(100), trailing_stop_bps=Decimal(50))


def test_order_ids_are_deterministic_per_decision_and_unique_across_decisions() -> None:
    first, second = make_executor(), make_executor()
    for ex in (first, second):
        ex.on_signal(signal("mom", "BTC-USD", "long", "1"))
    a, b = first.decide("BTC-USD", NOW), second.decide("BTC-USD", NOW)
    assert a is not None
    assert b is not None
    assert a.client_order_id == b.client_order_id
    assert a.to_request() == b.to_request()
    again = first.decide("BTC-USD", NOW)
    assert again is not None
    assert again.client_order_id != a.client_order_id
    restarted = executor.client_order_id(agent="grok", epoch="e2", symbol="BTC-USD", sequence=1)
    assert restarted != a.client_order_id


def test_conflicting_signals_net_out_to_no_order() -> None:
    ex = make_executor()
    ex.on_signal(signal("mom", "BTC-USD", "long", "0.8"))
    ex.on_signal(signal("mr", "BTC-USD", "short", "-0.8", role="mean-reversion"))
    assert ex.decide("BTC-USD", NOW) is None


def test_halted_stops_it_at_once_and_its_own_signals_are_ignored() -> None:
    ex = make_executor()
    ex.on_signal(signal("mom", "BTC-USD", "long", "1"))
    ex.on_risk_state(market.RiskState.HALTED)
    assert ex.decide("BTC-USD", NOW) is None
    ex.on_risk_state(market.RiskState.ACTIVE)
    ex2 = make_executor()
    ex2.on_signal(signal("grok", "BTC-USD", "long", "1"))
    assert ex2.decide("BTC-USD", NOW) is None


class _StubArbiter:
    """A model double for the pure executor logic (the providers have wire-level tests)."""

    def __init__(self, answer: dict[str, object] | None, delay: float = 0.0) -> None:
        self.answer, self.delay = answer, delay

    @property
    def label(self) -> str:
        return "stub/arbiter"

    async def ask(self, *, system: str, prompt: str, schema: type[T]) -> T | None:
        await asyncio.sleep(self.delay)
        return None if self.answer is None else schema.model_validate(self.answer)


async def test_arbitration_scales_later_decisions_without_blocking_the_current_one() -> None:
    ex = executor.Executor(
        executor.ExecutorConfig(agent="grok", limits=LIMITS, epoch="e1"),
        arbiter=_StubArbiter({"stance": "stand_aside", "scale": 0, "rationale": "too split"}, delay=0.05),
    )
    ex.on_instruments([sizing.Instrument("BTC-USD", Decimal("0.01"), Decimal("0.001"))])
    ex.on_tick(series.tick("BTC-USD", 100.0, at=NOW))
    ex.on_portfolio(equity=Decimal(100_000), positions={}, marks={}, now=NOW)
    ex.on_signal(signal("mom", "BTC-USD", "long", "1"))
    ex.on_signal(signal("mr", "BTC-USD", "short", "-0.5", "0.6", role="mean-reversion"))
    conflicted = ex.needs_arbitration("BTC-USD", NOW)
    assert conflicted is not None
    task = asyncio.create_task(ex.arbitrate(conflicted, NOW))
    assert ex.decide("BTC-USD", NOW) is not None  # the fast path did not wait
    assert await task == 0
    assert ex.decide("BTC-USD", NOW + timedelta(seconds=1)) is None
    assert ex.decide("BTC-USD", NOW + timedelta(seconds=120)) is not None


signal_strategy = st.builds(
    signal,
    agent=st.sampled_from(["a", "b", "c", "d"]),
    symbol=st.sampled_from(SYMBOLS),
    direction=st.sampled_from(["long", "short", "flat"]),
    strength=st.sampled_from(["0", "0.1", "0.5", "1", "-0.3", "-1"]),
    confidence=st.sampled_from(["0", "0.2", "0.7", "1"]),
    role=st.sampled_from(["momentum", "volatility", "sentiment"]),
)
event_strategy = st.one_of(
    st.tuples(st.just("signal"), signal_strategy),
    st.tuples(st.just("price"), st.tuples(st.sampled_from(SYMBOLS), st.floats(min_value=1, max_value=5_000))),
    st.tuples(st.just("risk"), st.sampled_from(list(market.RiskState))),
    st.tuples(st.just("pnl"), st.decimals(min_value=-2_000, max_value=2_000, places=2)),
)


@given(events=st.lists(event_strategy, max_size=60))
@settings(max_examples=200, deadline=None)
def test_whatever_the_signals_the_book_stays_inside_its_limits(events: list[tuple[str, object]]) -> None:
    ex = make_executor()
    for kind, value in events:
        if kind == "signal":
            assert isinstance(value, market.Signal)
            ex.on_signal(value)
        elif kind == "price":
            assert isinstance(value, tuple)
            symbol, price = value
            ex.on_tick(series.tick(symbol, price, at=NOW))
        elif kind == "risk":
            assert isinstance(value, market.RiskState)
            ex.on_risk_state(value)
        else:
            assert isinstance(value, Decimal)
            ex.equity = Decimal(100_000) + value
        for symbol in SYMBOLS:
            gross_before = sum(abs(q) * ex._conservative_price(s) for s, q in ex.positions.items())
            position_before = ex.positions.get(symbol, Decimal(0))
            order = ex.decide(symbol, NOW)
            if order is None:
                continue
            assert ex.risk_state is not market.RiskState.HALTED
            quote = ex.quotes[symbol]
            unit = max(quote.ask, order.plan.limit_price)
            assert order.plan.quantity * unit <= LIMITS.max_order_notional
            ex.on_order(  # the API's answer: filled in full at the order's limit
                order.client_order_id,
                symbol=order.plan.symbol,
                side=order.plan.side,
                filled=order.plan.quantity,
                average=order.plan.limit_price,
                fees=Decimal(0),
            )
            after = ex.positions[symbol]
            grows = abs(after) > abs(position_before) or after * position_before < 0
            if grows:
                assert ex.risk_state is market.RiskState.ACTIVE
                assert ex.daily_pnl > -LIMITS.max_daily_loss
                assert abs(after) * unit <= LIMITS.max_position_notional
                gross_after = sum(
                    abs(q) * max(ex._conservative_price(s), unit if s == symbol else 0)
                    for s, q in ex.positions.items()
                )
                assert gross_after <= max(LIMITS.max_gross_exposure, gross_before)


def test_fills_from_the_answer_and_the_channel_are_booked_once_and_move_cash_and_equity() -> None:
    ex = make_executor()
    ex.on_portfolio(equity=Decimal(100_000), cash=Decimal(100_000), positions={}, marks={}, now=NOW)
    assert ex.positions == {}
    # The 201 says 2 filled at 100 (fees 0.2); the channel then carries the same two executions.
    ex.on_order(
        "o1", symbol="BTC-USD", side="buy", filled=Decimal(2), average=Decimal(100), fees=Decimal("0.2")
    )
    ex.on_fill(
        "o1", symbol="BTC-USD", side="buy", quantity=Decimal(1), price=Decimal(100), fee=Decimal("0.1")
    )
    ex.on_fill(
        "o1", symbol="BTC-USD", side="buy", quantity=Decimal(1), price=Decimal(100), fee=Decimal("0.1")
    )
    assert ex.positions["BTC-USD"] == Decimal(2)
    assert ex.cash == Decimal("99799.8")
    # A bracket leg fills later, known only from the channel.
    ex.on_fill("leg", symbol="BTC-USD", side="sell", quantity=Decimal(1), price=Decimal(110), fee=Decimal(0))
    assert ex.positions["BTC-USD"] == Decimal(1)
    ex.on_tick(series.tick("BTC-USD", 120.0, at=NOW, spread=0))
    assert ex.equity == Decimal("99909.8") + Decimal(120)
    assert ex.daily_pnl == ex.equity - Decimal(100_000)  # against the API's day_start_equity


def test_the_daily_loss_baseline_is_the_apis_not_the_first_report_of_the_day() -> None:
    ex = make_executor()
    ex.on_day_start(NOW.date(), Decimal(101_000))
    ex.on_portfolio(equity=Decimal(100_000), positions={}, marks={}, now=NOW)
    assert ex.daily_pnl == Decimal(-1_000)
