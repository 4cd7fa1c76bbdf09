"""Protective orders in the real engine (``core/engine.py`` and ``core/triggers.py``) over
random price paths: a position is opened, protected by a stop (stop, stop_limit or
trailing_stop) and a take-profit in one OCO group, and the market wanders. At every step:

* a stop never fills at a better price than its stop (a sell at or below it, a buy at or above);
* a trailing stop's stop only moves in the position's favour;
* the two legs of the OCO pair never both fill;
* the position is never flipped nor grown by them: protective orders only reduce;
* the books balance (the equity identity of ``test_accounting_properties``).

3,000 examples; run with --hypothesis-show-statistics to see how many stopped out, took
profit, or neither.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sapphire.trader_api import errors
from sapphire.trader_api.core import accounting, domain, engine, records, risk
from tests.trader_api.test_accounting_properties import (
    PROPERTY_SETTINGS,
    TICK,
    Ledger,
    assert_books_balance,
    quote_at,
)
from tests.trader_api.test_accounting_properties import new_engine as new_trading_engine

SYMBOL = "BTC-USD"
START = Decimal("1000.00")
LIMITS = risk.RiskLimits(
    max_order_notional=Decimal(10**9),
    max_position_notional=Decimal(10**9),
    max_gross_exposure=Decimal(10**9),
    max_daily_loss=Decimal(10**9),
    max_drawdown=Decimal(1),
    price_collar_bps=Decimal(10_000),
    stale_quote_seconds=Decimal(5),
)
STOPS = (domain.OrderType.STOP, domain.OrderType.STOP_LIMIT, domain.OrderType.TRAILING_STOP)
TAKES = (domain.OrderType.TAKE_PROFIT, domain.OrderType.TAKE_PROFIT_LIMIT)


def new_engine() -> engine.Engine:
    return new_trading_engine(LIMITS)


def tick(trader: engine.Engine, mid: Decimal, size: Decimal = Decimal(1000)) -> records.Changes:
    trader.apply(records.ApplyTicks((quote_at(SYMBOL, mid, 1, size),)))
    return trader.take_changes()


def submit(
    trader: engine.Engine, name: str, side: domain.Side, kind: domain.OrderType, **fields: object
) -> None:
    trader.apply(
        records.SubmitOrder(
            client_order_id=name,
            request_hash=name,
            symbol=SYMBOL,
            side=side,
            type=kind,
            quantity=fields.pop("quantity", Decimal(1)),  # type: ignore[arg-type]
            limit_price=fields.pop("limit_price", None),  # type: ignore[arg-type]
            time_in_force=domain.TimeInForce.GTC,
            agent="test",
            **fields,  # type: ignore[arg-type]
        )
    )


def ticks_away(price: Decimal, ticks: int) -> Decimal:
    return max(price + ticks * TICK, TICK)


@settings(PROPERTY_SETTINGS, max_examples=3_000)
@given(
    long=st.booleans(),
    quantity=st.integers(1, 500).map(lambda lots: Decimal(lots) / 100),
    stop_kind=st.sampled_from(STOPS),
    take_kind=st.sampled_from(TAKES),
    stop_ticks=st.integers(1, 3_000),
    take_ticks=st.integers(1, 3_000),
    limit_ticks=st.integers(0, 500),
    trail_bps=st.integers(1, 2_000),
    path=st.lists(st.integers(-800, 800), min_size=1, max_size=60),
)
def test_protective_orders_stop_out_or_take_profit_only_ever_reducing(
    long: bool,
    quantity: Decimal,
    stop_kind: domain.OrderType,
    take_kind: domain.OrderType,
    stop_ticks: int,
    take_ticks: int,
    limit_ticks: int,
    trail_bps: int,
    path: list[int],
) -> None:
    trader, ledger = new_engine(), Ledger()
    entry_side, exit_side = (
        (domain.Side.BUY, domain.Side.SELL) if long else (domain.Side.SELL, domain.Side.BUY)
    )
    against = -1 if long else 1  # the direction of a loss, in ticks
    tick(trader, START)
    submit(trader, "entry", entry_side, domain.OrderType.MARKET, quantity=quantity)
    stop_price = ticks_away(START, against * stop_ticks)
    stop_fields: dict[str, object] = {"stop_price": stop_price}
    if stop_kind is domain.OrderType.STOP_LIMIT:
        stop_fields["limit_price"] = ticks_away(stop_price, against * limit_ticks)
    if stop_kind is domain.OrderType.TRAILING_STOP:
        stop_fields = {"trail_bps": Decimal(trail_bps)}
    submit(trader, "stop", exit_side, stop_kind, quantity=quantity, oco_group="guard", **stop_fields)
    take_price = ticks_away(START, -against * take_ticks)
    take_fields: dict[str, object] = {"stop_price": take_price}
    if take_kind is domain.OrderType.TAKE_PROFIT_LIMIT:
        take_fields["limit_price"] = take_price
    if trader.account.portfolio.position(SYMBOL).quantity == 0:  # the stop fired on arrival
        with pytest.raises(errors.RiskRefusedError, match="only reduces a position"):
            submit(trader, "take", exit_side, take_kind, quantity=quantity, oco_group="guard", **take_fields)
    else:
        submit(trader, "take", exit_side, take_kind, quantity=quantity, oco_group="guard", **take_fields)
    ids = {trader.idempotency[name][1]: name for name in ("stop", "take") if name in trader.idempotency}

    def record(changes: records.Changes) -> None:
        for fill in changes.fills:
            booked = accounting.Fill(fill.symbol, fill.side, fill.quantity, fill.price, fill.fee)
            ledger.book(booked)
            if ids.get(fill.order_id) == "stop":
                stop = changes.orders[fill.order_id].stop_price
                assert stop is not None
                assert fill.price <= stop if exit_side is domain.Side.SELL else fill.price >= stop
        for event_ in changes.events:
            if isinstance(event_.subject, records.Order) and ids.get(event_.subject.id) == "stop":
                stops.append(event_.subject.stop_price)

    stops: list[Decimal | None] = []
    record(trader.take_changes())
    mid = START
    for step in path:
        mid = ticks_away(mid, step)
        record(tick(trader, mid))
        held = trader.account.portfolio.position(SYMBOL).quantity
        assert 0 <= held * entry_side.sign <= quantity, "a protective order flipped or grew the position"
        legs = [trader.order(order_id) for order_id in ids]
        assert sum(1 for leg in legs if leg is not None and leg.filled_quantity > 0) <= 1, (
            "both OCO legs filled"
        )
        assert_books_balance(trader.account.portfolio, ledger)
    moved = [s for s in stops if s is not None]
    if stop_kind is domain.OrderType.TRAILING_STOP:
        assert moved == sorted(moved, reverse=not long), "the trailing stop moved against the position"
    outcome = {ids[o.id] for o in (trader.order(i) for i in ids) if o is not None and o.filled_quantity}
    event(f"{stop_kind.value}: " + (next(iter(outcome)) if outcome else "neither fired"))


def test_a_protective_order_that_would_not_reduce_is_refused() -> None:
    trader = new_engine()
    tick(trader, START)
    with pytest.raises(errors.RiskRefusedError) as refused:
        submit(trader, "naked", domain.Side.SELL, domain.OrderType.STOP, stop_price=Decimal("990.00"))
    assert refused.value.rule == "reduce_only"
    assert trader.open_orders == []


def test_a_stop_keeps_protecting_through_a_halt_and_closes_the_position() -> None:
    trader = new_engine()
    tick(trader, START)
    submit(trader, "entry", domain.Side.BUY, domain.OrderType.MARKET, quantity=Decimal(2))
    trader.apply(records.SetRiskState(domain.RiskState.HALTED, "operator"))
    submit(
        trader,
        "stop",
        domain.Side.SELL,
        domain.OrderType.STOP,
        quantity=Decimal(2),
        stop_price=Decimal("990.00"),
    )
    trader.take_changes()
    stop_id = trader.idempotency["stop"][1]
    waiting = trader.order(stop_id)
    assert waiting is not None
    assert waiting.waiting
    assert tick(trader, Decimal("995.00")).fills == []  # above the stop: nothing fires
    fills = tick(trader, Decimal("989.00")).fills
    assert [(f.side, f.quantity) for f in fills] == [(domain.Side.SELL, Decimal(2))]
    assert fills[0].price <= Decimal("990.00")
    assert trader.account.portfolio.position(SYMBOL).quantity == 0
    stopped = trader.order(stop_id)
    assert stopped is not None
    assert stopped.status is domain.OrderStatus.FILLED
    assert stopped.reason.startswith("stop triggered: bid 988.99 <= stop_price 990.00")
