"""Backtest metrics keep their invariants whatever the equity curve or fills (hypothesis)."""

from __future__ import annotations

import decimal
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from sapphire.backtest import metrics

START = datetime(2026, 1, 1, tzinfo=UTC)
equities = st.lists(
    st.decimals(min_value=Decimal("1"), max_value=Decimal("1000000"), places=2, allow_nan=False),
    min_size=2,
    max_size=60,
)


def curve(values: list[Decimal]) -> list[metrics.Sample]:
    return [metrics.Sample(START + timedelta(minutes=i), v) for i, v in enumerate(values)]


@given(equities)
def test_max_drawdown_is_a_fraction_bounded_by_its_peak_and_trough(values: list[Decimal]) -> None:
    drawdown = metrics.max_drawdown(curve(values))
    assert Decimal(0) <= drawdown.depth < 1
    if drawdown.depth > 0:
        assert drawdown.start is not None
        assert drawdown.trough is not None
        assert drawdown.start < drawdown.trough
        assert drawdown.end is None or drawdown.end > drawdown.trough
        peak = max(v for s, v in zip(curve(values), values, strict=True) if s.ts <= drawdown.start)
        trough = next(v for s, v in zip(curve(values), values, strict=True) if s.ts == drawdown.trough)
        assert abs((peak - trough) / peak - drawdown.depth) <= metrics.RATIO_QUANTUM


@given(equities)
def test_a_curve_that_never_falls_has_no_drawdown(values: list[Decimal]) -> None:
    rising = sorted(values)
    assert metrics.max_drawdown(curve(rising)).depth == 0
    assert metrics.calmar(Decimal("0.1"), metrics.max_drawdown(curve(rising))) is None


@given(equities, st.sampled_from([Decimal(10), Decimal(100), Decimal(1000)]))
def test_metrics_do_not_depend_on_the_account_size(values: list[Decimal], scale: Decimal) -> None:
    small, large = curve(values), curve([v * scale for v in values])
    per_year = metrics.periods_per_year(Decimal(60))
    assert metrics.total_return(small) == metrics.total_return(large)
    assert metrics.max_drawdown(small).depth == metrics.max_drawdown(large).depth
    small_returns, large_returns = metrics.period_returns(small), metrics.period_returns(large)
    assert metrics.sharpe(small_returns, per_year) == metrics.sharpe(large_returns, per_year)


@given(equities)
def test_total_return_compounds_the_period_returns(values: list[Decimal]) -> None:
    samples = curve(values)
    with decimal.localcontext(metrics.CONTEXT):
        compounded = Decimal(1)
        for r in metrics.period_returns(samples):
            compounded *= 1 + r
        assert abs((compounded - 1) - metrics.total_return(samples)) <= metrics.RATIO_QUANTUM


fills = st.lists(
    st.tuples(
        st.sampled_from(["BTC-USD", "ETH-USD"]),
        st.integers(min_value=-5, max_value=5).filter(bool),
        st.decimals(min_value=Decimal("-50"), max_value=Decimal("50"), places=4, allow_nan=False),
        st.decimals(min_value=Decimal("0"), max_value=Decimal("2"), places=8, allow_nan=False),
    ),
    max_size=40,
)


@given(fills)
def test_round_trips_account_for_every_fill_and_fee(rows: list[tuple[str, int, Decimal, Decimal]]) -> None:
    executions = [
        metrics.Execution(symbol, Decimal(qty), pnl, fee, START + timedelta(seconds=i))
        for i, (symbol, qty, pnl, fee) in enumerate(rows)
    ]
    # Realized PnL only arises on reducing fills; opening fills realize nothing.
    held: dict[str, Decimal] = {}
    honest = []
    for e in executions:
        before = held.get(e.symbol, Decimal(0))
        held[e.symbol] = before + e.signed_quantity
        opening = before == 0
        honest.append(
            e if not opening else metrics.Execution(e.symbol, e.signed_quantity, Decimal(0), e.fee, e.ts)
        )
    trades = metrics.round_trips(honest)
    assert sum((t.pnl for t in trades), Decimal(0)) == sum(
        (e.realized_pnl - e.fee for e in honest), Decimal(0)
    )
    assert sum((t.fees for t in trades), Decimal(0)) == sum((e.fee for e in honest), Decimal(0))
    assert sum(1 for t in trades if t.closed_at is None) == sum(1 for q in held.values() if q != 0)
    for trade in trades:
        assert trade.closed_at is None or trade.closed_at >= trade.opened_at
    stats = metrics.trade_stats(trades)
    assert stats.trades + stats.open_trades == len(trades)
    if stats.win_rate is not None:
        assert Decimal(0) <= stats.win_rate <= 1


def test_a_long_round_trip_is_one_trade_with_its_net_pnl() -> None:
    t0 = START
    trades = metrics.round_trips(
        [
            metrics.Execution("BTC-USD", Decimal(2), Decimal(0), Decimal("0.5"), t0),
            metrics.Execution("BTC-USD", Decimal(-1), Decimal(10), Decimal("0.25"), t0 + timedelta(hours=1)),
            metrics.Execution("BTC-USD", Decimal(-3), Decimal(4), Decimal("0.75"), t0 + timedelta(hours=2)),
        ]
    )
    assert [(t.side, t.pnl, t.closed_at) for t in trades] == [
        ("long", Decimal("12.50"), t0 + timedelta(hours=2)),  # 10 + 4 realized - 1.5 fees
        ("short", Decimal(0), None),
    ]
    stats = metrics.trade_stats(trades)
    assert (stats.trades, stats.open_trades, stats.win_rate) == (1, 1, Decimal(1))
    assert stats.average_holding == timedelta(hours=2)
