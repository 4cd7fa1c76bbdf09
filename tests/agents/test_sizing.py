"""Sizing never exceeds its limits, whatever the score, quotes, position or account (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from sapphire.agents import market, sizing
from sapphire.domain.risk import NotionalLimits

LIMITS = NotionalLimits(
    max_order_notional=Decimal(5_000),
    max_position_notional=Decimal(20_000),
    max_gross_exposure=Decimal(50_000),
    max_daily_loss=Decimal(1_000),
)
BTC = sizing.Instrument(symbol="BTC-USD", tick_size=Decimal("0.01"), lot_size=Decimal("0.0001"))

decimals = st.decimals
limits_strategy = st.builds(
    NotionalLimits,
    max_order_notional=decimals(min_value=1, max_value=1_000_000, places=2),
    max_position_notional=decimals(min_value=1, max_value=1_000_000, places=2),
    max_gross_exposure=decimals(min_value=1, max_value=3_000_000, places=2),
    max_daily_loss=decimals(min_value=1, max_value=100_000, places=2),
)
instrument_strategy = st.builds(
    sizing.Instrument,
    symbol=st.just("X"),
    tick_size=st.sampled_from([Decimal("0.01"), Decimal("0.5"), Decimal("0.0001")]),
    lot_size=st.sampled_from([Decimal(1), Decimal("0.001"), Decimal("0.0001")]),
)


def unit(plan: sizing.OrderPlan, ask: Decimal) -> Decimal:
    return max(ask, plan.limit_price)


@given(
    limits=limits_strategy,
    instrument=instrument_strategy,
    score=decimals(min_value=-3, max_value=3, places=4),
    bid=decimals(min_value="0.01", max_value=100_000, places=2),
    spread=decimals(min_value=0, max_value=50, places=2),
    position=decimals(min_value=-1_000, max_value=1_000, places=4),
    other=decimals(min_value=0, max_value=3_000_000, places=2),
    daily_pnl=decimals(min_value=-200_000, max_value=200_000, places=2),
    state=st.sampled_from(list(market.RiskState)),
)
@settings(max_examples=800, deadline=None)
def test_an_order_never_breaches_a_limit(
    limits: NotionalLimits,
    instrument: sizing.Instrument,
    score: Decimal,
    bid: Decimal,
    spread: Decimal,
    position: Decimal,
    other: Decimal,
    daily_pnl: Decimal,
    state: market.RiskState,
) -> None:
    ask = bid + spread
    plan = sizing.plan_order(
        instrument=instrument,
        score=score,
        bid=bid,
        ask=ask,
        position=position,
        other_exposure=other,
        limits=limits,
        daily_pnl=daily_pnl,
        risk_state=state,
    )
    if plan is None:
        return
    assert state is not market.RiskState.HALTED
    price = unit(plan, ask)
    assert plan.quantity > 0
    assert plan.quantity % instrument.lot_size == 0
    assert plan.quantity * price <= limits.max_order_notional
    after = plan.position_after
    assert after == position + (plan.quantity if plan.side == "buy" else -plan.quantity)
    grows = abs(after) > abs(position) or (after * position < 0)
    if grows:
        assert abs(after) * price <= limits.max_position_notional
        assert other + abs(after) * price <= limits.max_gross_exposure
    if state is market.RiskState.REDUCING or daily_pnl <= -limits.max_daily_loss:
        assert not grows
        assert plan.reduce_only
    if plan.side == "buy":
        assert plan.limit_price >= ask
    else:
        assert plan.limit_price <= bid


def test_a_full_long_score_buys_up_to_the_order_limit_then_the_position_limit() -> None:
    position = Decimal(0)
    for _ in range(10):
        plan = sizing.plan_order(
            instrument=BTC,
            score=Decimal(1),
            bid=Decimal(100),
            ask=Decimal("100.02"),
            position=position,
            other_exposure=Decimal(0),
            limits=LIMITS,
            daily_pnl=Decimal(0),
            risk_state=market.RiskState.ACTIVE,
        )
        if plan is None:
            break
        assert plan.side == "buy"
        assert plan.quantity * plan.limit_price <= LIMITS.max_order_notional
        position = plan.position_after
    assert position * Decimal("100.13") <= LIMITS.max_position_notional
    assert position * Decimal("100.13") > LIMITS.max_position_notional * Decimal("0.97")


def plan_btc(
    *,
    score: Decimal,
    position: Decimal,
    state: market.RiskState = market.RiskState.ACTIVE,
    daily_pnl: Decimal = Decimal(0),
) -> sizing.OrderPlan | None:
    return sizing.plan_order(
        instrument=BTC,
        score=score,
        bid=Decimal(100),
        ask=Decimal("100.02"),
        position=position,
        other_exposure=Decimal(0),
        limits=LIMITS,
        daily_pnl=daily_pnl,
        risk_state=state,
    )


def test_halted_sends_nothing_and_reducing_only_unwinds() -> None:
    assert plan_btc(score=Decimal(1), position=Decimal(0), state=market.RiskState.HALTED) is None
    assert plan_btc(score=Decimal(1), position=Decimal(0), state=market.RiskState.REDUCING) is None
    plan = plan_btc(score=Decimal(-1), position=Decimal(10), state=market.RiskState.REDUCING)
    assert plan is not None
    assert plan.side == "sell"
    assert plan.position_after >= 0


def test_a_day_that_lost_its_limit_only_closes() -> None:
    plan = plan_btc(score=Decimal(1), position=Decimal(-20), daily_pnl=Decimal(-1000))
    assert plan is not None
    assert plan.side == "buy"
    assert plan.position_after == 0


def test_tiny_rebalances_are_skipped() -> None:
    assert plan_btc(score=Decimal("0.501"), position=Decimal(100)) is None
