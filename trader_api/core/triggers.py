"""When a protective order fires: stops, take-profits and trailing stops, emulated on quotes.

These rules are the engine's: on the paper venue, and on a live venue for the types it does
not hold natively (``Venue.native``). A native order is fired by the exchange's own rule.

A protective order protects a position: a **sell** protects a long, a **buy** a short. It
waits, untriggered, until a quote reaches its ``stop_price``; it then becomes the order the
venue works (``Order.working``): a market order, or a limit order at ``limit_price`` for
the ``*_limit`` types. The rules, evaluated on every quote in time order, so a backtest
fires them exactly as the live engine does:

===================  ==============================  ==============================
type                 a sell fires when               a buy fires when
===================  ==============================  ==============================
stop, stop_limit     bid <= stop_price               ask >= stop_price
take_profit(_limit)  bid >= stop_price               ask <= stop_price
trailing_stop        bid <= stop_price               ask >= stop_price
===================  ==============================  ==============================

A trailing stop's ``stop_price`` follows the touch the position is valued against: for a
sell, ``bid - trail`` (``trail_amount``, or ``trail_bps`` of the bid), rounded down to the
tick, and it only ever rises; for a buy, ``ask + trail`` rounded up, and it only falls.

Because a stop fires only once the touch has crossed it, and a market order fills at the
touch or worse, a stop never fills at a better price than its stop: a sell at or below
``stop_price``, a buy at or above.
"""

from __future__ import annotations

import decimal
from datetime import datetime
from decimal import Decimal

from sapphire.domain.decimals import round_to_step
from sapphire.trader_api.core import accounting, domain

_STOPS = (domain.OrderType.STOP, domain.OrderType.STOP_LIMIT, domain.OrderType.TRAILING_STOP)


def trailed_stop(
    side: domain.Side,
    quote: domain.Quote,
    *,
    current: Decimal | None,
    trail_amount: Decimal | None,
    trail_bps: Decimal | None,
    tick_size: Decimal,
) -> Decimal:
    """A trailing stop's stop after ``quote``: moved only in the position's favour."""
    with decimal.localcontext(accounting.CONTEXT):
        touch = quote.bid if side is domain.Side.SELL else quote.ask
        distance = trail_amount if trail_amount is not None else touch * (trail_bps or 0) / 10_000
        if side is domain.Side.SELL:
            candidate = max(round_to_step(touch - distance, tick_size, decimal.ROUND_FLOOR), tick_size)
            return candidate if current is None else max(current, candidate)
        candidate = round_to_step(touch + distance, tick_size, decimal.ROUND_CEILING)
        return candidate if current is None else min(current, candidate)


def fires(order_type: domain.OrderType, side: domain.Side, stop_price: Decimal, quote: domain.Quote) -> bool:
    """Whether ``quote`` triggers a protective order (the table above)."""
    if order_type in _STOPS:
        return quote.bid <= stop_price if side is domain.Side.SELL else quote.ask >= stop_price
    return quote.bid >= stop_price if side is domain.Side.SELL else quote.ask <= stop_price


def why(order_type: domain.OrderType, side: domain.Side, stop_price: Decimal, quote: domain.Quote) -> str:
    """The reason a triggered order carries: the rule and the quote that fired it."""
    touch, price = ("bid", quote.bid) if side is domain.Side.SELL else ("ask", quote.ask)
    relation = "<=" if (order_type in _STOPS) == (side is domain.Side.SELL) else ">="
    return (
        f"{order_type.value} triggered: {touch} {price} {relation} stop_price {stop_price} "
        f"(quote at {quote.ts.isoformat()})"
    )


def why_at_venue(
    order_type: domain.OrderType, stop_price: Decimal | None, *, venue: str, since: datetime | None
) -> str:
    """The reason a native order carries once the exchange has fired it: what the exchange
    tells (its own trigger rule, on its own prices; when it began to work, if it says)."""
    when = "" if since is None else f" (working since {since.isoformat()})"
    return f"{order_type.value} triggered at {venue}: stop_price {stop_price} reached by its own rule{when}"
