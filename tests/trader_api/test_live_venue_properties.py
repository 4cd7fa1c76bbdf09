"""The engine's live-venue state machine, as properties: whatever order the exchange's answers
come in, and however often a trade is reported, each trade is booked once, the books add up
exactly, and a cancel that races fills never loses one."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sapphire.trader_api import errors
from sapphire.trader_api.core import accounting, domain, engine, records
from tests.trader_api.test_accounting_properties import CONFIG, INITIAL, LOT, quote_at
from tests.trader_api.test_accounting_properties import new_engine as new_trading_engine
from tests.trader_api.test_protective_properties import LIMITS, SYMBOL

QUANTITY = Decimal(1)
PRICE = Decimal("1000.00")

trades = st.lists(
    st.tuples(st.integers(min_value=0, max_value=7), st.integers(min_value=1, max_value=300)),
    max_size=20,
)
"""(trade id, lots): ids repeat, as an exchange that reports a trade again (a poll, a restart)."""


def live_engine() -> engine.Engine:
    trader = new_trading_engine(LIMITS, engine.LiveVenue(CONFIG))
    trader.apply(records.ApplyTicks((quote_at(SYMBOL, Decimal("1000.50"), 1, Decimal(0)),)))
    trader.take_changes()
    return trader


def submitted(trader: engine.Engine) -> records.Order:
    result = trader.apply(
        records.SubmitOrder(
            client_order_id="live-1",
            request_hash="h",
            symbol=SYMBOL,
            side=domain.Side.BUY,
            type=domain.OrderType.LIMIT,
            quantity=QUANTITY,
            limit_price=PRICE,
            time_in_force=domain.TimeInForce.GTC,
            agent="test",
        )
    )
    assert isinstance(result, records.OrderAccepted)
    return result.order


@settings(max_examples=150, deadline=None)
@given(reports=trades, cancel_at=st.integers(min_value=-1, max_value=20), accepted=st.booleans())
def test_each_trade_is_booked_once_and_a_racing_cancel_never_loses_a_fill(
    reports: list[tuple[int, int]], cancel_at: int, accepted: bool
) -> None:
    trader = live_engine()
    order = submitted(trader)
    assert order.status is domain.OrderStatus.PENDING_NEW
    changes = trader.take_changes()
    assert [type(i) for i in changes.outbound] == [records.PlaceAtVenue]  # sent after the commit
    assert changes.fills == []
    if accepted:
        trader.apply(records.VenueAccepted(order.id, "ex-1"))
    booked: dict[str, Decimal] = {}
    with decimal.localcontext(accounting.CONTEXT):
        for step, (trade, lots) in enumerate(reports):
            if step == cancel_at:
                try:
                    trader.apply(records.CancelOrder(order.id))
                except errors.ConflictError:
                    assert sum(booked.values()) == QUANTITY  # only a filled order cannot be canceled
            quantity = lots * LOT
            key = f"t{trade}"
            if key not in booked and sum(booked.values()) + quantity <= QUANTITY:
                booked[key] = quantity
            elif key not in booked:
                continue  # more than the order's quantity: no exchange reports that
            trader.apply(
                records.VenueFill(order.id, key, booked[key], PRICE, Decimal("0.10"), "maker", "ex-1")
            )
        now = trader.order(order.id)
        assert now is not None
        filled = sum(booked.values(), Decimal(0))
        assert now.filled_quantity == filled
        assert sorted(now.exchange_trades) == sorted(booked)
        assert trader.account.portfolio.position(SYMBOL).quantity == filled
        assert trader.account.portfolio.cash == INITIAL - filled * PRICE - Decimal("0.10") * len(booked)
        if filled == QUANTITY:
            assert now.status is domain.OrderStatus.FILLED
        elif 0 <= cancel_at < len(reports):
            assert now.status is domain.OrderStatus.PENDING_CANCEL  # until the exchange answers
            trader.apply(
                records.VenueClosed(order.id, domain.OrderStatus.CANCELED, "canceled at the exchange")
            )
            closed = trader.order(order.id)
            assert closed is not None
            assert closed.status is domain.OrderStatus.CANCELED
            assert closed.reason == "canceled by request"
            assert closed.filled_quantity == filled
        else:
            assert now.status is (
                domain.OrderStatus.PARTIALLY_FILLED
                if filled
                else (domain.OrderStatus.ACCEPTED if accepted else domain.OrderStatus.PENDING_NEW)
            )
    all_fills = trader.take_changes().fills
    assert len(all_fills) == len(booked)
    assert {f.exchange_trade_id for f in all_fills} == set(booked)


def test_a_cancel_at_a_live_venue_waits_for_the_exchange_and_amends_are_refused() -> None:
    trader = live_engine()
    order = submitted(trader)
    trader.take_changes()
    result = trader.apply(records.CancelOrder(order.id))
    assert isinstance(result, records.OrderAccepted)
    assert result.order.status is domain.OrderStatus.PENDING_CANCEL
    changes = trader.take_changes()
    assert [type(i) for i in changes.outbound] == [records.CancelAtVenue]
    again = trader.apply(records.CancelOrder(order.id))  # a second cancel asks nothing more
    assert isinstance(again, records.OrderAccepted)
    assert trader.take_changes().outbound == []
    with pytest.raises(errors.ConflictError, match="cannot amend it in place"):
        trader.apply(records.ReplaceOrder(order.id, "amend-1", "h2", limit_price=Decimal("999.00")))
