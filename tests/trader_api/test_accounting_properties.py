"""Accounting properties of the order engine and the pure core, over random order and price
sequences. The first property drives the real engine (``core/engine.py``), the code that
serves ``POST /v1/orders`` and ``POST /v1/ticks``.

For every step of every sequence:
* equity = cash + sum(quantity x mark), where cash, quantities and marks come from an
  independent ledger kept here in exact fractions;
* realized + unrealized - fees = equity - initial equity (PnL explains the equity change);
* no fill goes beyond what risk allows: its notional is within max_order_notional, and
  unless it shrinks the position, the position and gross exposure it leaves are within
  their limits at the fill price.

11,000 examples in all (5,000 + 4,000 + 2,000); run with --hypothesis-show-statistics to see them.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sapphire.trader_api import errors
from sapphire.trader_api.core import accounting, domain, engine, records, risk, venue

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TICK = Decimal("0.01")
LOT = Decimal("0.001")
SYMBOLS = ("BTC-USD", "ETH-USD")
INITIAL = Decimal("100000")
CONFIG = venue.VenueConfig(fee_bps=Decimal("7.5"), slippage_bps=Decimal("3"))
PROPERTY_SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

prices = st.integers(min_value=100, max_value=2_000_000).map(lambda cents: Decimal(cents) * TICK)
quantities = st.integers(min_value=1, max_value=50_000).map(lambda lots: Decimal(lots) * LOT)
sides = st.sampled_from(list(domain.Side))


@st.composite
def limits(draw: st.DrawFn) -> risk.RiskLimits:
    return risk.RiskLimits(
        max_order_notional=Decimal(draw(st.integers(1_000, 200_000))),
        max_position_notional=Decimal(draw(st.integers(1_000, 300_000))),
        max_gross_exposure=Decimal(draw(st.integers(1_000, 400_000))),
        max_daily_loss=Decimal(10**9),
        max_drawdown=Decimal(1),
        price_collar_bps=Decimal(draw(st.integers(10, 2_000))),
        stale_quote_seconds=Decimal(5),
    )


price_step = st.tuples(st.just("price"), st.sampled_from(SYMBOLS), prices, st.integers(1, 40), quantities)
order_step = st.tuples(
    st.just("order"),
    st.sampled_from(SYMBOLS),
    sides,
    quantities,
    st.one_of(st.none(), st.integers(-300, 300)),  # limit offset from the mid in ticks; None = market
    st.sampled_from(list(domain.TimeInForce)),
)
steps = st.lists(st.one_of(price_step, order_step), min_size=1, max_size=40)


@dataclasses.dataclass
class Ledger:
    """The test's own books, in exact fractions, from the fills alone."""

    cash: Fraction = Fraction(INITIAL)
    quantities: dict[str, Fraction] = dataclasses.field(default_factory=dict)

    def book(self, fill: accounting.Fill) -> None:
        signed = Fraction(fill.quantity) * fill.side.sign
        self.cash -= signed * Fraction(fill.price) + Fraction(fill.fee)
        self.quantities[fill.symbol] = self.quantities.get(fill.symbol, Fraction(0)) + signed


def assert_books_balance(portfolio: accounting.Portfolio, ledger: Ledger) -> None:
    assert Fraction(portfolio.cash) == ledger.cash
    marks = {symbol: Fraction(p.mark) for symbol, p in portfolio.positions.items()}
    for symbol, quantity in ledger.quantities.items():
        assert Fraction(portfolio.position(symbol).quantity) == quantity
    expected_equity = ledger.cash + sum((q * marks[s] for s, q in ledger.quantities.items()), Fraction(0))
    assert Fraction(portfolio.equity) == expected_equity
    pnl = portfolio.realized_pnl + portfolio.unrealized_pnl - portfolio.fees
    assert pnl == portfolio.equity - INITIAL


def assert_fill_within_limits(
    before: accounting.Portfolio, fill: accounting.Fill, after: accounting.Portfolio, limits: risk.RiskLimits
) -> None:
    assert fill.quantity * fill.price <= limits.max_order_notional
    held, now_held = before.position(fill.symbol).quantity, after.position(fill.symbol).quantity
    shrank = abs(now_held) < abs(held) and (now_held == 0 or (now_held > 0) == (held > 0))
    if shrank:
        return
    assert abs(now_held) * fill.price <= limits.max_position_notional
    others = sum((abs(p.market_value) for s, p in before.positions.items() if s != fill.symbol), Decimal(0))
    assert others + abs(now_held) * fill.price <= limits.max_gross_exposure


def quote_at(symbol: str, mid: Decimal, half_spread_ticks: int, size: Decimal) -> domain.Quote:
    spread = TICK * half_spread_ticks
    return domain.Quote(
        symbol=symbol, bid=max(mid - spread, TICK), ask=mid + spread, last=mid, size=size, ts=NOW
    )


def new_engine(limits: risk.RiskLimits, venue: engine.Venue | None = None) -> engine.Engine:
    """The real order engine on an empty account, the paper venue (or ``venue``) and a fixed clock."""
    account = records.Account(
        portfolio=accounting.Portfolio(cash=INITIAL),
        initial_equity=INITIAL,
        watermarks=risk.Watermarks(trading_day=NOW.date(), day_start_equity=INITIAL, peak_equity=INITIAL),
        risk_state=domain.RiskState.ACTIVE,
        risk_reason="",
        limits=limits,
        updated_at=NOW,
    )
    return engine.Engine(
        records.EngineState(account=account, open_orders=(), idempotency={}, sequence=0, intakes=0),
        venue=venue or engine.PaperVenue(CONFIG),
        instruments=lambda symbol: INSTRUMENT if symbol in SYMBOLS else None,
        clock=lambda: NOW,
    )


@dataclasses.dataclass(frozen=True)
class Instrument:
    tick_size: Decimal = TICK
    lot_size: Decimal = LOT


INSTRUMENT = Instrument()


def command_for(trader: engine.Engine, step: tuple[object, ...], serial: int) -> records.Command:
    """The engine command a scripted step stands for."""
    if step[0] == "price":
        _, symbol, mid, half_spread, size = step
        return records.ApplyTicks(
            (quote_at(str(symbol), Decimal(str(mid)), int(str(half_spread)), Decimal(str(size))),)
        )
    _, symbol, side, quantity, offset, tif = step
    quote = trader.quotes.get(str(symbol))
    limit_price = None
    if offset is not None and quote is not None:
        limit_price = max(quote.mid.quantize(TICK) + int(str(offset)) * TICK, TICK)
    return records.SubmitOrder(
        client_order_id=f"o{serial}",
        request_hash=f"h{serial}",
        symbol=str(symbol),
        side=domain.Side(str(side)),
        type=domain.OrderType.MARKET if limit_price is None else domain.OrderType.LIMIT,
        quantity=Decimal(str(quantity)),
        limit_price=limit_price,
        time_in_force=domain.TimeInForce(str(tif)),
        agent=None,
    )


@pytest.mark.timeout(360)  # 5,000 CPU-bound examples: about a minute alone, far more on a busy machine
@settings(PROPERTY_SETTINGS, max_examples=5_000)
@given(limits=limits(), script=steps)
def test_books_balance_and_risk_holds_over_random_order_and_price_sequences(
    limits: risk.RiskLimits, script: list[tuple[object, ...]]
) -> None:
    trader, ledger = new_engine(limits), Ledger()
    # The fills replayed through accounting alone: the position and exposure each fill leaves.
    replayed = accounting.Portfolio(cash=INITIAL)
    fill_count = 0
    for serial, step in enumerate(script):
        command = command_for(trader, step, serial)
        refused: str | None = None
        try:
            trader.apply(command)
        except errors.RiskRefusedError as refusal:
            refused = refusal.rule
        if isinstance(command, records.SubmitOrder) and command.symbol not in trader.quotes:
            # No quote, no order; the kill switch (the engine halts when equity reaches 0,
            # max_drawdown=1) is the only rule checked before it.
            halted = trader.account.risk_state is domain.RiskState.HALTED
            assert refused == ("risk_state" if halted else "stale_quote")
        for fill in trader.take_changes().fills:
            booked = accounting.Fill(fill.symbol, fill.side, fill.quantity, fill.price, fill.fee)
            before, replayed = replayed, accounting.apply_fill(replayed, booked)
            assert_fill_within_limits(before, booked, replayed, limits)
            ledger.book(booked)
            fill_count += 1
        if isinstance(command, records.ApplyTicks):
            quote = command.quotes[0]
            replayed = accounting.mark_to_market(replayed, quote.symbol, quote.mid)
        assert_books_balance(trader.account.portfolio, ledger)
        assert trader.account.portfolio == replayed
    event("fills: " + ("none" if not fill_count else "1-2" if fill_count < 3 else "3 or more"))


fills = st.lists(
    st.tuples(st.sampled_from(SYMBOLS), sides, quantities, prices, st.integers(0, 10_000)),
    min_size=1,
    max_size=60,
)


@settings(PROPERTY_SETTINGS, max_examples=4_000)
@given(script=fills, marks=st.lists(prices, min_size=2, max_size=2))
def test_any_fill_sequence_keeps_pnl_equal_to_the_equity_change(
    script: list[tuple[str, domain.Side, Decimal, Decimal, int]], marks: list[Decimal]
) -> None:
    portfolio, ledger = accounting.Portfolio(cash=INITIAL), Ledger()
    for symbol, side, quantity, price, fee_millis in script:
        fill = accounting.Fill(symbol, side, quantity, price, Decimal(fee_millis) / 1000)
        portfolio = accounting.apply_fill(portfolio, fill)
        ledger.book(fill)
        assert_books_balance(portfolio, ledger)
    for symbol, mark in zip(SYMBOLS, marks, strict=True):
        portfolio = accounting.mark_to_market(portfolio, symbol, mark)
        assert_books_balance(portfolio, ledger)
    for position in portfolio.positions.values():
        if position.quantity == 0:
            assert position.cost_basis == 0  # a flat position carries no cost


@settings(PROPERTY_SETTINGS, max_examples=2_000)
@given(
    limits=limits(),
    held=st.integers(-2_000, 2_000).map(lambda lots: Decimal(lots) * LOT * 100),
    side=sides,
    quantity=quantities,
    price=prices,
)
def test_pre_trade_check_never_admits_an_order_whose_fill_the_guard_would_refuse(
    limits: risk.RiskLimits, held: Decimal, side: domain.Side, quantity: Decimal, price: Decimal
) -> None:
    portfolio = accounting.Portfolio(cash=INITIAL)
    if held:
        portfolio = accounting.apply_fill(
            portfolio, accounting.Fill("BTC-USD", domain.Side.BUY, abs(held), price, Decimal(0))
        )
        if held < 0:
            portfolio = accounting.apply_fill(
                portfolio, accounting.Fill("BTC-USD", domain.Side.SELL, 2 * abs(held), price, Decimal(0))
            )
    quote = quote_at("BTC-USD", price, 1, Decimal(1))
    admitted = risk.check_order(
        intent=risk.OrderIntent("BTC-USD", side, quantity, price),
        portfolio=portfolio,
        limits=limits,
        state=domain.RiskState.ACTIVE,
        quote=quote,
        now=NOW,
    )
    guard = risk.check_fill(
        portfolio=portfolio,
        limits=limits,
        state=domain.RiskState.ACTIVE,
        symbol="BTC-USD",
        side=side,
        quantity=quantity,
        price=price,
    )
    if admitted is None:
        assert guard is None
