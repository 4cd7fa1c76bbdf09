"""Brackets in the real engine over random price paths (``core/brackets.py``): a resting limit
entry with ``attached`` legs fills bit by bit (random tick sizes), may be amended (a new limit
price, so a new average), and the market wanders. At every step:

* the legs cover exactly what the entry filled while they wait, at the prices the entry's
  average fill gives, rounded to the tick (a fixed stop toward the entry, a take-profit away);
* a stop leg never fills at a better price than its stop;
* a trailing stop leg's stop only moves in the position's favour;
* the two legs never both fill, and once one has, the entry is no longer open;
* legs never flip or grow the position: it stays between zero and what the entry filled;
* the books balance.

1,500 examples; ``--hypothesis-show-statistics`` shows how many stopped out, took profit, or
neither.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

from hypothesis import event, given, settings
from hypothesis import strategies as st

from sapphire.trader_api.core import accounting, brackets, domain, records
from tests.trader_api.test_accounting_properties import (
    PROPERTY_SETTINGS,
    TICK,
    Ledger,
    assert_books_balance,
    quote_at,
)
from tests.trader_api.test_protective_properties import START, SYMBOL, new_engine, ticks_away


def expected_price(average: Decimal, bps: Decimal, *, long: bool, stop: bool) -> Decimal:
    """The leg price the README promises, computed independently of ``core/brackets.py``."""
    with decimal.localcontext(accounting.CONTEXT):
        away = average * bps / 10_000
        raw = average - away if long == stop else average + away
        rounding = decimal.ROUND_CEILING if long else decimal.ROUND_FLOOR
        return max(raw.quantize(TICK, rounding=rounding), TICK)


@settings(PROPERTY_SETTINGS, max_examples=1_500)
@given(
    long=st.booleans(),
    quantity=st.integers(1, 300).map(lambda lots: Decimal(lots) / 100),
    trailing=st.booleans(),
    stop_bps=st.integers(1, 400).map(Decimal),
    take_bps=st.integers(1, 600).map(Decimal),
    amend_at=st.integers(0, 40),
    amend_ticks=st.integers(-300, 300),
    path=st.lists(
        st.tuples(st.integers(-600, 600), st.integers(0, 200).map(lambda lots: Decimal(lots) / 100)),
        min_size=1,
        max_size=50,
    ),
)
def test_bracket_legs_cover_the_fills_and_only_ever_reduce(
    long: bool,
    quantity: Decimal,
    trailing: bool,
    stop_bps: Decimal,
    take_bps: Decimal,
    amend_at: int,
    amend_ticks: int,
    path: list[tuple[int, Decimal]],
) -> None:
    trader, ledger = new_engine(), Ledger()
    side, exit_side = (domain.Side.BUY, domain.Side.SELL) if long else (domain.Side.SELL, domain.Side.BUY)
    trader.apply(records.ApplyTicks((quote_at(SYMBOL, START, 1, Decimal(0)),)))
    attached = records.Attached(
        stop_bps=None if trailing else stop_bps,
        trail_bps=stop_bps if trailing else None,
        take_profit_bps=take_bps,
    )
    result = trader.apply(
        records.SubmitOrder(
            client_order_id="entry",
            request_hash="entry",
            symbol=SYMBOL,
            side=side,
            type=domain.OrderType.LIMIT,
            quantity=quantity,
            limit_price=START,
            time_in_force=domain.TimeInForce.GTC,
            agent="test",
            attached=attached,
        )
    )
    assert isinstance(result, records.OrderAccepted)
    entry_id = result.order.id
    leg_ids: dict[str, object] = {}
    trails: list[Decimal] = []

    def record(changes: records.Changes) -> None:
        for fill in changes.fills:
            ledger.book(accounting.Fill(fill.symbol, fill.side, fill.quantity, fill.price, fill.fee))
            filled = changes.orders[fill.order_id]
            if filled.parent_id == entry_id and filled.client_order_id.endswith(brackets.STOP):
                assert filled.stop_price is not None
                assert (
                    fill.price <= filled.stop_price
                    if exit_side is domain.Side.SELL
                    else fill.price >= filled.stop_price
                )
        for event_ in changes.events:
            subject = event_.subject
            if isinstance(subject, records.Order) and subject.parent_id == entry_id:
                assert subject.side is exit_side
                name = subject.client_order_id.rsplit("/", 1)[1]
                leg_ids[name] = subject.id
                if trailing and name == brackets.STOP and subject.stop_price is not None:
                    trails.append(subject.stop_price)

    record(trader.take_changes())
    mid = START
    for step, (move, size) in enumerate(path):
        entry = trader.order(entry_id)
        assert entry is not None
        if step == amend_at and entry.status.is_open:
            trader.apply(
                records.ReplaceOrder(
                    order_id=entry_id,
                    client_order_id="amend",
                    request_hash="amend",
                    limit_price=ticks_away(START, amend_ticks),
                )
            )
        mid = ticks_away(mid, move)
        trader.apply(records.ApplyTicks((quote_at(SYMBOL, mid, 1, size),)))
        record(trader.take_changes())

        entry = trader.order(entry_id)
        assert entry is not None
        held = trader.account.portfolio.position(SYMBOL).quantity
        assert 0 <= held * side.sign <= entry.filled_quantity, "a leg flipped or grew the position"
        legs = {name: trader.order(order_id) for name, order_id in leg_ids.items()}  # type: ignore[arg-type]
        filled_legs = [name for name, leg in legs.items() if leg is not None and leg.filled_quantity > 0]
        assert len(filled_legs) <= 1, "both legs filled"
        if filled_legs:
            assert not entry.status.is_open, "the entry kept buying after a leg closed the position"
        if entry.filled_quantity > 0:
            assert set(legs) == {brackets.STOP, brackets.TAKE_PROFIT}
        average = entry.average_price
        for name, leg in legs.items():
            if leg is None or not leg.waiting or average is None or filled_legs:
                continue
            assert leg.quantity == entry.filled_quantity
            if name == brackets.TAKE_PROFIT:
                assert leg.stop_price == expected_price(average, take_bps, long=long, stop=False)
            elif not trailing:
                assert leg.stop_price == expected_price(average, stop_bps, long=long, stop=True)
        assert_books_balance(trader.account.portfolio, ledger)
    assert trails == sorted(trails, reverse=not long), "the trailing stop moved against the position"
    outcome = {
        name
        for name, order_id in leg_ids.items()
        if (leg := trader.order(order_id)) is not None and leg.filled_quantity > 0  # type: ignore[arg-type]
    }
    entry = trader.order(entry_id)
    assert entry is not None
    unfired = "neither filled" if entry.filled_quantity else "entry never filled"
    event(("trailing" if trailing else "fixed") + ": " + (next(iter(outcome)) if outcome else unfired))
