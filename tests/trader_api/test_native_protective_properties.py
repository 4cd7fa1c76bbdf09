"""Protective orders on a live venue that holds them natively, in the real engine: the types
ccxt's features give Binance spot (``services/exchange.native_protective``) go to the venue at
once with their trigger and are never fired by the engine's emulation, whatever the quotes;
their fills are booked once per trade id; trailing stops, orders the venue declined, and
OCO groups (brackets too: two exchange orders would lock the same coins twice) stay emulated.

The exchange's answers are the commands ``services/ccxt_venue.py`` feeds back; the tests
against the local Binance through ccxt are in ``test_native_triggered_orders.py``."""

from __future__ import annotations

import itertools
import uuid
from decimal import Decimal

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sapphire.trader_api import errors
from sapphire.trader_api.core import accounting, brackets, domain, engine, records
from sapphire.trader_api.services import exchange
from tests.trader_api.test_accounting_properties import CONFIG, TICK, Ledger, assert_books_balance, quote_at
from tests.trader_api.test_accounting_properties import new_engine as new_trading_engine
from tests.trader_api.test_protective_properties import LIMITS, SYMBOL

PRICE = Decimal("1000.00")
STOP = Decimal("990.00")
TARGET = Decimal("1010.00")
BINANCE = exchange.native_protective("binance")


def test_ccxt_says_binance_spot_holds_stops_and_take_profits_but_not_trailing_stops() -> None:
    assert {
        domain.OrderType.STOP,
        domain.OrderType.STOP_LIMIT,
        domain.OrderType.TAKE_PROFIT,
        domain.OrderType.TAKE_PROFIT_LIMIT,
    } == BINANCE
    assert exchange.native_protective("bitstamp") == frozenset()  # ccxt: no trigger params there
    assert not engine.PaperVenue(CONFIG).native(domain.OrderType.STOP)


def tick(trader: engine.Engine, mid: Decimal) -> records.Changes:
    trader.apply(records.ApplyTicks((quote_at(SYMBOL, mid, 1, Decimal(1000)),)))
    return trader.take_changes()


def accepted(result: records.Result) -> records.Order:
    assert isinstance(result, records.OrderAccepted)
    return result.order


def current(trader: engine.Engine, order_id: uuid.UUID) -> records.Order:
    order = trader.order(order_id)
    assert order is not None
    return order


def long_position(quantity: Decimal = Decimal(1)) -> engine.Engine:
    """A live engine on Binance's native types, holding ``quantity`` bought at ``PRICE``."""
    trader = new_trading_engine(LIMITS, engine.LiveVenue(CONFIG, native_types=BINANCE))
    tick(trader, PRICE)
    entry = accepted(trader.apply(order("entry", domain.Side.BUY, domain.OrderType.MARKET, quantity)))
    trader.apply(records.VenueAccepted(entry.id, "ex-entry"))
    trader.apply(records.VenueFill(entry.id, "t-entry", quantity, PRICE, Decimal(0), "taker"))
    trader.take_changes()
    return trader


def order(
    name: str, side: domain.Side, kind: domain.OrderType, quantity: Decimal = Decimal(1), **fields: object
) -> records.SubmitOrder:
    return records.SubmitOrder(
        client_order_id=name,
        request_hash=name,
        symbol=SYMBOL,
        side=side,
        type=kind,
        quantity=quantity,
        limit_price=fields.pop("limit_price", None),  # type: ignore[arg-type]
        time_in_force=domain.TimeInForce.GTC,
        agent="test",
        **fields,  # type: ignore[arg-type]
    )


mids = st.lists(
    st.integers(min_value=-3000, max_value=3000).map(lambda ticks: PRICE + ticks * TICK), max_size=30
)
reports = st.lists(st.sampled_from(["t1", "t2", "t3"]), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(sorted(BINANCE)), path=mids, trades=reports, triggered_first=st.booleans())
def test_a_native_order_is_never_fired_by_the_engine_and_each_trade_books_once(
    kind: domain.OrderType, path: list[Decimal], trades: list[str], triggered_first: bool
) -> None:
    trader = long_position()
    stop = STOP if kind in (domain.OrderType.STOP, domain.OrderType.STOP_LIMIT) else TARGET
    limit = {"limit_price": stop} if kind.takes_limit_price else {}
    placed = accepted(trader.apply(order("protect", domain.Side.SELL, kind, stop_price=stop, **limit)))
    assert placed.status is domain.OrderStatus.PENDING_NEW
    assert placed.native
    sent = trader.take_changes().outbound
    assert [(type(i), i.order.stop_price) for i in sent] == [(records.PlaceAtVenue, stop)]
    trader.apply(records.VenueAccepted(placed.id, "ex-protect"))
    for mid in path:  # through the trigger and back: the exchange's to fire, not the engine's
        changes = tick(trader, mid)
        assert changes.outbound == []
        assert changes.fills == []
        resting = current(trader, placed.id)
        assert (resting.status, resting.triggered_at, resting.native) == (
            domain.OrderStatus.ACCEPTED,
            None,
            True,
        )
    if triggered_first:
        trader.apply(records.VenueTriggered(placed.id, f"{kind.value} triggered at binance"))
        assert current(trader, placed.id).triggered_at is not None
    lots = {name: Decimal(1) / len(set(trades)) for name in set(trades)}
    for trade in trades:  # reported again and again, as polls and restarts do
        trader.apply(records.VenueFill(placed.id, trade, lots[trade], stop, Decimal(0), "taker"))
    changes = trader.take_changes()
    assert sorted(f.exchange_trade_id or "" for f in changes.fills) == sorted(set(trades))
    done = current(trader, placed.id)
    assert done.filled_quantity == sum(lots.values())
    assert trader.account.portfolio.position(SYMBOL).quantity == 1 - done.filled_quantity


@pytest.mark.parametrize("fired_leg", ["stop", "take_profit"])
def test_a_brackets_legs_stay_emulated_at_a_live_venue_and_the_first_to_fill_cancels_the_other(
    fired_leg: str,
) -> None:
    # Two native legs would lock the same coins twice at the exchange: the engine holds both.
    trader = new_trading_engine(LIMITS, engine.LiveVenue(CONFIG, native_types=BINANCE))
    tick(trader, PRICE)
    entry = accepted(
        trader.apply(
            order(
                "bracket",
                domain.Side.BUY,
                domain.OrderType.LIMIT,
                Decimal(2),
                limit_price=PRICE,
                attached=records.Attached(stop_price=STOP, take_profit_price=TARGET),
            )
        )
    )
    trader.apply(records.VenueAccepted(entry.id, "ex-entry"))
    trader.take_changes()  # the entry's own PlaceAtVenue
    trader.apply(records.VenueFill(entry.id, "t1", Decimal(2), PRICE, Decimal(0), "maker"))
    legs = {o.client_order_id.rsplit("/", 1)[1]: o for o in trader.open_orders if o.parent_id == entry.id}
    assert {name: (o.status, o.quantity, o.native) for name, o in legs.items()} == {
        "stop": (domain.OrderStatus.NEW, Decimal(2), False),
        "take_profit": (domain.OrderStatus.NEW, Decimal(2), False),
    }
    assert trader.take_changes().outbound == []  # nothing goes to the exchange before a leg fires

    fired, other = legs[fired_leg], legs["take_profit" if fired_leg == "stop" else "stop"]
    sent = tick(trader, STOP - 10 if fired_leg == "stop" else TARGET + 10).outbound
    assert [(type(i), i.order.id, i.order.working.type, i.order.native) for i in sent] == [
        (records.PlaceAtVenue, fired.id, domain.OrderType.MARKET, False)
    ]
    trader.apply(records.VenueAccepted(fired.id, "ex-fired"))
    trader.apply(records.VenueFill(fired.id, "t2", Decimal(2), PRICE, Decimal(0), "taker"))
    assert trader.take_changes().outbound == []  # the other leg was never at the exchange
    closed = trader.order(other.id)
    assert closed is not None
    assert closed.status is domain.OrderStatus.CANCELED
    assert closed.reason.startswith("oco: ")
    assert current(trader, fired.id).status is domain.OrderStatus.FILLED
    assert trader.account.portfolio.position(SYMBOL).quantity == 0


def test_an_oco_leg_that_fired_at_a_live_venue_cancels_its_sibling_before_its_fill() -> None:
    # The fired leg is an order in flight until the exchange fills it; a sibling left armed
    # meanwhile would fire on the next quote and sell the position a second time.
    trader = long_position()
    stop, take = (
        accepted(trader.apply(order(name, domain.Side.SELL, kind, stop_price=price, oco_group="exit")))
        for name, kind, price in (
            ("oco-stop", domain.OrderType.STOP, STOP),
            ("oco-tp", domain.OrderType.TAKE_PROFIT, TARGET),
        )
    )
    trader.take_changes()
    sent = tick(trader, STOP - 10).outbound
    assert [(type(i), i.order.id) for i in sent] == [(records.PlaceAtVenue, stop.id)]
    trader.apply(records.VenueAccepted(stop.id, "ex-stop"))
    in_flight = current(trader, stop.id)
    assert (in_flight.status, in_flight.filled_quantity) == (domain.OrderStatus.ACCEPTED, Decimal(0))
    sibling = trader.order(take.id)
    assert sibling is not None
    assert sibling.status is domain.OrderStatus.CANCELED
    assert sibling.reason == f"oco: {stop.id} of group exit fired"
    assert tick(trader, TARGET + 10).outbound == []  # through the take-profit: nothing more goes out
    trader.apply(records.VenueFill(stop.id, "t-stop", Decimal(1), STOP - 10, Decimal(0), "taker"))
    assert trader.account.portfolio.position(SYMBOL).quantity == 0


def test_an_oco_pair_stays_emulated_at_a_live_venue() -> None:
    trader = long_position()
    pair = [
        accepted(trader.apply(order(name, domain.Side.SELL, kind, stop_price=price, oco_group="exit")))
        for name, kind, price in (
            ("oco-stop", domain.OrderType.STOP, STOP),
            ("oco-tp", domain.OrderType.TAKE_PROFIT, TARGET),
        )
    ]
    assert [(o.status, o.native) for o in pair] == [(domain.OrderStatus.NEW, False)] * 2
    assert trader.take_changes().outbound == []


def test_a_trailing_stop_stays_emulated_and_goes_out_as_a_market_order_when_it_fires() -> None:
    trader = long_position()
    trailing = accepted(
        trader.apply(
            order("trail", domain.Side.SELL, domain.OrderType.TRAILING_STOP, trail_amount=Decimal("5.00"))
        )
    )
    assert (trailing.status, trailing.native) == (domain.OrderStatus.NEW, False)
    assert trader.take_changes().outbound == []
    tick(trader, PRICE + 20)  # the stop follows the bid up
    sent = tick(trader, PRICE + 10).outbound  # 10 below the high: fired by the engine
    assert len(sent) == 1
    assert isinstance(sent[0], records.PlaceAtVenue)
    assert sent[0].order.triggered_at is not None
    assert not sent[0].order.native
    assert sent[0].order.working.type is domain.OrderType.MARKET


def test_an_order_the_venue_declines_is_emulated_and_fired_by_the_engine() -> None:
    trader = long_position()
    target = accepted(
        trader.apply(order("tp", domain.Side.SELL, domain.OrderType.TAKE_PROFIT, stop_price=TARGET))
    )
    trader.take_changes()
    tick(trader, TARGET)  # the bid is a tick below the target: the engine would not fire it yet
    trader.apply(
        records.VenueDeclined(target.id, "binance would not hold it: Order would trigger immediately.")
    )
    emulated = current(trader, target.id)
    assert (emulated.status, emulated.native) == (domain.OrderStatus.NEW, False)
    assert "emulated in the engine" in emulated.reason
    assert trader.take_changes().outbound == []
    sent = tick(trader, TARGET + 1).outbound
    assert [(type(i), i.order.id, i.order.working.type) for i in sent] == [
        (records.PlaceAtVenue, target.id, domain.OrderType.MARKET)
    ]


def test_an_amend_of_a_native_order_is_refused_and_a_cancel_goes_to_the_venue() -> None:
    trader = long_position()
    placed = accepted(trader.apply(order("stop", domain.Side.SELL, domain.OrderType.STOP, stop_price=STOP)))
    trader.take_changes()
    with pytest.raises(errors.ConflictError, match="cannot amend it in place"):
        trader.apply(records.ReplaceOrder(placed.id, "amend-1", "h2", stop_price=STOP - 1))
    canceled = accepted(trader.apply(records.CancelOrder(placed.id)))
    assert canceled.status is domain.OrderStatus.PENDING_CANCEL
    assert [type(i) for i in trader.take_changes().outbound] == [records.CancelAtVenue]


def test_a_stop_the_arrival_quote_already_fires_is_sent_as_its_working_order() -> None:
    trader = long_position()
    tick(trader, STOP - 5)
    fired = accepted(trader.apply(order("late", domain.Side.SELL, domain.OrderType.STOP, stop_price=STOP)))
    assert fired.triggered_at is not None
    assert not fired.native
    sent = trader.take_changes().outbound
    assert [(type(i), i.order.working.type) for i in sent] == [
        (records.PlaceAtVenue, domain.OrderType.MARKET)
    ]


class Exchange:
    """Just enough of an exchange for the engine's instructions: it fills market orders at
    the touch, holds native stops and take-profits and fires them by its own rule (Binance's:
    the last price reaching the stop), reports every trade twice (a poll and a
    reconciliation), and cancels what it still holds."""

    def __init__(self, trader: engine.Engine) -> None:
        self.trader = trader
        self.held: dict[uuid.UUID, records.Order] = {}
        self.placed: list[records.Order] = []
        self.trades = itertools.count(1)

    def answer(self, quote: domain.Quote, ledger: Ledger) -> None:
        """Act on the engine's instructions and the market until nothing more happens."""
        while True:
            changes = self.trader.take_changes()
            for fill in changes.fills:
                ledger.book(accounting.Fill(fill.symbol, fill.side, fill.quantity, fill.price, fill.fee))
            fired = [o for o in self.held.values() if self.fires(o, quote)]
            if not changes.outbound and not fired:
                return
            for instruction in changes.outbound:
                match instruction:
                    case records.PlaceAtVenue(order):
                        self.placed.append(order)
                        self.trader.apply(records.VenueAccepted(order.id, f"ex-{order.id}"))
                        if order.native:
                            self.held[order.id] = order
                        else:
                            self.fill(order, quote)
                    case records.CancelAtVenue(order):
                        if self.held.pop(order.id, None) is not None:
                            self.trader.apply(
                                records.VenueClosed(
                                    order.id, domain.OrderStatus.CANCELED, "canceled at the exchange"
                                )
                            )
            for order in fired:
                if self.held.pop(order.id, None) is not None:
                    self.trader.apply(
                        records.VenueTriggered(order.id, f"{order.type.value} triggered at the exchange")
                    )
                    self.fill(order, quote)

    @staticmethod
    def fires(order: records.Order, quote: domain.Quote) -> bool:
        assert order.stop_price is not None
        falling = (order.type is domain.OrderType.STOP) == (order.side is domain.Side.SELL)
        return quote.last <= order.stop_price if falling else quote.last >= order.stop_price

    def fill(self, order: records.Order, quote: domain.Quote) -> None:
        price = quote.ask if order.side is domain.Side.BUY else quote.bid
        trade = f"x{next(self.trades)}"
        for _ in range(2):
            self.trader.apply(
                records.VenueFill(order.id, trade, order.quantity, price, Decimal("0.01"), "taker")
            )


@settings(max_examples=400, deadline=None)
@given(
    lots=st.integers(min_value=1, max_value=50),
    stop_ticks=st.integers(min_value=1, max_value=2000),
    take_ticks=st.integers(min_value=1, max_value=2000),
    path=st.lists(st.integers(min_value=-400, max_value=400), max_size=40),
)
def test_a_bracket_at_a_live_venue_never_fills_both_legs_and_keeps_the_books(
    lots: int, stop_ticks: int, take_ticks: int, path: list[int]
) -> None:
    trader = new_trading_engine(LIMITS, engine.LiveVenue(CONFIG, native_types=BINANCE))
    venue, ledger = Exchange(trader), Ledger()
    quantity = lots * Decimal("0.1")
    mid = PRICE
    quote = quote_at(SYMBOL, mid, 1, Decimal(1000))
    trader.apply(records.ApplyTicks((quote,)))
    attached = records.Attached(
        stop_price=PRICE - stop_ticks * TICK, take_profit_price=PRICE + take_ticks * TICK
    )
    entry = accepted(
        trader.apply(order("entry", domain.Side.BUY, domain.OrderType.MARKET, quantity, attached=attached))
    )
    venue.answer(quote, ledger)
    legs = [
        trader.idempotency[brackets.leg_client_order_id(entry.id, name)][1]
        for name in ("stop", "take_profit")
    ]
    for step in path:
        mid = max(mid + step * TICK, 2 * TICK)
        quote = quote_at(SYMBOL, mid, 1, Decimal(1000))
        trader.apply(records.ApplyTicks((quote,)))
        venue.answer(quote, ledger)
        assert not any(o.native for o in venue.placed), "a bracket leg went to the exchange natively"
        assert len([o for o in venue.placed if o.id in legs]) <= 1, "both legs went to the exchange"
        held = trader.account.portfolio.position(SYMBOL).quantity
        assert 0 <= held <= quantity, "a protective order flipped or grew the position"
        filled = [leg for leg in legs if current(trader, leg).filled_quantity > 0]
        assert len(filled) <= 1, "both legs of the bracket filled"
        assert_books_balance(trader.account.portfolio, ledger)
    if any(current(trader, leg).filled_quantity for leg in legs):
        assert trader.account.portfolio.position(SYMBOL).quantity == 0
        assert all(not current(trader, leg).status.is_open for leg in legs)
    event("a leg filled" if trader.account.portfolio.position(SYMBOL).quantity == 0 else "neither fired")
