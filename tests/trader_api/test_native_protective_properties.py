"""Protective orders on a live venue that holds them natively, in the real engine: the types
ccxt's features give Binance spot (``services/exchange.native_protective``) go to the venue at
once with their trigger and are never fired by the engine's emulation, whatever the quotes;
their fills are booked once per trade id; a bracket's other leg is canceled at the venue;
trailing stops, and orders the venue declined, stay emulated.

The exchange's answers are the commands ``services/ccxt_venue.py`` feeds back; the tests
against the local Binance through ccxt are in ``test_native_triggered_orders.py``."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sapphire.trader_api import errors
from sapphire.trader_api.core import domain, engine, records
from sapphire.trader_api.services import exchange
from tests.trader_api.test_accounting_properties import CONFIG, TICK, quote_at
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


@pytest.mark.parametrize("filled_leg", ["stop", "take_profit"])
def test_a_brackets_legs_go_native_once_the_entry_filled_and_one_legs_fill_cancels_the_other_at_the_venue(
    filled_leg: str,
) -> None:
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
    trader.apply(records.VenueFill(entry.id, "t1", Decimal(1), PRICE, Decimal(0), "maker"))
    legs = {o.client_order_id.rsplit("/", 1)[1]: o for o in trader.open_orders if o.parent_id == entry.id}
    assert {name: (o.status, o.quantity) for name, o in legs.items()} == {
        "stop": (domain.OrderStatus.NEW, Decimal(1)),  # emulated while the entry may still grow them
        "take_profit": (domain.OrderStatus.NEW, Decimal(1)),
    }
    assert [type(i) for i in trader.take_changes().outbound] == []
    trader.apply(records.VenueFill(entry.id, "t2", Decimal(1), PRICE, Decimal(0), "maker"))
    sent = trader.take_changes().outbound
    assert sorted((i.order.type, i.order.quantity, i.order.stop_price) for i in sent) == [
        (domain.OrderType.STOP, Decimal(2), STOP),
        (domain.OrderType.TAKE_PROFIT, Decimal(2), TARGET),
    ]
    assert all(isinstance(i, records.PlaceAtVenue) and i.order.native for i in sent)
    tick(trader, STOP - 10)  # the engine does not fire them: no second order could ever go out
    assert trader.take_changes().outbound == []

    fired, other = legs[filled_leg], legs["take_profit" if filled_leg == "stop" else "stop"]
    trader.apply(records.VenueAccepted(fired.id, "ex-fired"))
    trader.apply(records.VenueAccepted(other.id, "ex-other"))
    trader.apply(records.VenueTriggered(fired.id, "triggered at binance"))
    trader.apply(
        records.VenueFill(fired.id, "t3", Decimal(2), fired.stop_price or PRICE, Decimal(0), "taker")
    )
    changes = trader.take_changes()
    assert [(type(i), i.order.id) for i in changes.outbound] == [(records.CancelAtVenue, other.id)]
    assert current(trader, other.id).status is domain.OrderStatus.PENDING_CANCEL
    trader.apply(records.VenueClosed(other.id, domain.OrderStatus.CANCELED, "canceled at the exchange"))
    closed = current(trader, other.id)
    assert closed.status is domain.OrderStatus.CANCELED
    assert closed.reason.startswith("oco: ")
    assert current(trader, fired.id).status is domain.OrderStatus.FILLED
    assert trader.account.portfolio.position(SYMBOL).quantity == 0


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
