"""Accounting properties of the pure core, over random order and price sequences.

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

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sapphire.trader_api.core import accounting, domain, risk, venue

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


class Simulation:
    """The paper venue's decisions, driven step by step exactly as the services drive them."""

    def __init__(self, limits: risk.RiskLimits) -> None:
        self.limits = limits
        self.portfolio = accounting.Portfolio(cash=INITIAL)
        self.ledger = Ledger()
        self.quotes: dict[str, domain.Quote] = {}
        self.resting: list[venue.WorkingOrder] = []
        self.fills = 0

    def execute(self, order: venue.WorkingOrder, execution: venue.Execution) -> bool:
        refusal = risk.check_fill(
            portfolio=self.portfolio,
            limits=self.limits,
            state=domain.RiskState.ACTIVE,
            symbol=order.symbol,
            side=order.side,
            quantity=execution.quantity,
            price=execution.price,
        )
        if refusal is not None:
            return False
        fill = accounting.Fill(order.symbol, order.side, execution.quantity, execution.price, execution.fee)
        before = self.portfolio
        self.portfolio = accounting.apply_fill(self.portfolio, fill)
        self.ledger.book(fill)
        self.fills += 1
        assert_fill_within_limits(before, fill, self.portfolio, self.limits)
        return True

    def on_price(self, symbol: str, mid: Decimal, half_spread: int, size: Decimal) -> None:
        quote = self.quotes[symbol] = quote_at(symbol, mid, half_spread, size)
        still_resting = []
        for order in self.resting:
            execution = (
                venue.on_tick(order, quote, config=CONFIG, lot_size=LOT) if order.symbol == symbol else None
            )
            if execution is None:
                still_resting.append(order)
                continue
            if not self.execute(order, execution):
                continue  # the guard refused: the order is canceled
            remaining = dataclasses.replace(order, filled_quantity=order.filled_quantity + execution.quantity)
            if remaining.remaining > 0:
                still_resting.append(remaining)
        self.resting = still_resting
        self.portfolio = accounting.mark_to_market(self.portfolio, symbol, quote.mid)

    def on_order(
        self, symbol: str, side: domain.Side, quantity: Decimal, offset: int | None, tif: domain.TimeInForce
    ) -> None:
        quote = self.quotes.get(symbol)
        limit_price = None
        if offset is not None and quote is not None:
            limit_price = max(quote.mid.quantize(TICK) + offset * TICK, TICK)
        order = venue.WorkingOrder(
            symbol=symbol,
            side=side,
            type=domain.OrderType.MARKET if offset is None else domain.OrderType.LIMIT,
            time_in_force=tif,
            quantity=quantity,
            limit_price=limit_price,
        )
        if quote is None:
            assert risk.check_order(
                intent=risk.OrderIntent(symbol, side, quantity, Decimal(1)),
                portfolio=self.portfolio,
                limits=self.limits,
                state=domain.RiskState.ACTIVE,
                quote=None,
                now=NOW,
            ) == risk.Refusal("stale_quote", f"no quote for {symbol} yet: orders need fresh market data")
            return
        price = limit_price or venue.arrival_price(order, quote, config=CONFIG, tick_size=TICK)
        pending = sum(
            (o.remaining for o in self.resting if o.symbol == symbol and o.side is side), Decimal(0)
        )
        refusal = risk.check_order(
            intent=risk.OrderIntent(symbol, side, quantity, price, limit_price, pending),
            portfolio=self.portfolio,
            limits=self.limits,
            state=domain.RiskState.ACTIVE,
            quote=quote,
            now=NOW,
        )
        if refusal is not None:
            return
        arrival = venue.on_arrival(order, quote, config=CONFIG, tick_size=TICK)
        if arrival.execution is not None:
            self.execute(order, arrival.execution)
        elif arrival.status is domain.OrderStatus.NEW:
            self.resting.append(order)


@settings(PROPERTY_SETTINGS, max_examples=5_000)
@given(limits=limits(), script=steps)
def test_books_balance_and_risk_holds_over_random_order_and_price_sequences(
    limits: risk.RiskLimits, script: list[tuple[object, ...]]
) -> None:
    simulation = Simulation(limits)
    for step in script:
        if step[0] == "price":
            _, symbol, mid, half_spread, size = step
            simulation.on_price(str(symbol), Decimal(str(mid)), int(str(half_spread)), Decimal(str(size)))
        else:
            _, symbol, side, quantity, offset, tif = step
            simulation.on_order(
                str(symbol),
                domain.Side(str(side)),
                Decimal(str(quantity)),
                None if offset is None else int(str(offset)),
                domain.TimeInForce(str(tif)),
            )
        assert_books_balance(simulation.portfolio, simulation.ledger)
    event("fills: " + ("none" if not simulation.fills else "1-2" if simulation.fills < 3 else "3 or more"))


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
