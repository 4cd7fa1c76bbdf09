"""The paper venue's fill model: deterministic, so a backtest replays the same fills.

* **Market orders** fill in full on arrival at the touch (buys at the ask, sells at the
  bid) moved against the order by ``slippage_bps``, rounded to the tick away from the
  order's favour. Time-in-force does not matter to them: they never rest.
* **Limit orders** that are marketable on arrival (a buy limit at or above the ask, a sell
  limit at or below the bid) fill in full at the touch, which is never worse than the limit.
  Otherwise ``ioc`` orders are canceled and ``gtc``/``day`` orders rest.
* **Resting limit orders** fill when a later tick crosses them (ask <= buy limit,
  bid >= sell limit), at their limit price. Each crossing tick fills at most its ``size``
  (the traded size, rounded down to the lot), so a large order fills partially over several
  ticks (``partially_filled``); a tick of size 0 fills nothing. ``day`` orders are canceled
  when the UTC day of their creation ends.
* Every execution pays ``fee_bps`` of its notional (see :func:`accounting.fee_for`).
"""

from __future__ import annotations

import dataclasses
import decimal
from datetime import datetime
from decimal import Decimal

from sapphire.domain.decimals import round_to_step
from sapphire.trader_api.core import accounting, domain


@dataclasses.dataclass(frozen=True)
class VenueConfig:
    fee_bps: Decimal
    slippage_bps: Decimal


@dataclasses.dataclass(frozen=True)
class Execution:
    quantity: Decimal
    price: Decimal
    fee: Decimal
    liquidity: str
    """``taker`` (filled on arrival) or ``maker`` (a resting order was crossed)."""


@dataclasses.dataclass(frozen=True)
class WorkingOrder:
    """What the venue needs to know about an order."""

    symbol: str
    side: domain.Side
    type: domain.OrderType
    time_in_force: domain.TimeInForce
    quantity: Decimal
    limit_price: Decimal | None
    filled_quantity: Decimal = Decimal(0)
    created_at: datetime | None = None

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity


@dataclasses.dataclass(frozen=True)
class Arrival:
    execution: Execution | None
    status: domain.OrderStatus


def is_multiple(value: Decimal, step: Decimal) -> bool:
    # CONTEXT's remainder is ``value % step`` in ``localcontext(CONTEXT)``, without copying the
    # context: the intake checks every order's quantity and prices.
    return accounting.CONTEXT.remainder(value, step) == 0


def market_price(
    side: domain.Side, quote: domain.Quote, *, slippage_bps: Decimal, tick_size: Decimal
) -> Decimal:
    """Where a market order fills: the touch, moved ``slippage_bps`` against the order."""
    with decimal.localcontext(accounting.CONTEXT):
        if side is domain.Side.BUY:
            return round_to_step(quote.ask * (1 + slippage_bps / 10_000), tick_size, decimal.ROUND_CEILING)
        price = round_to_step(quote.bid * (1 - slippage_bps / 10_000), tick_size, decimal.ROUND_FLOOR)
        return max(price, tick_size)


def is_marketable(order: WorkingOrder, quote: domain.Quote) -> bool:
    if order.type is domain.OrderType.MARKET:
        return True
    if order.limit_price is None:
        raise ValueError("limit_price: required for limit orders")
    if order.side is domain.Side.BUY:
        return quote.ask <= order.limit_price
    return quote.bid >= order.limit_price


def arrival_price(
    order: WorkingOrder, quote: domain.Quote, *, config: VenueConfig, tick_size: Decimal
) -> Decimal:
    """The price the order would fill at on arrival (assuming it is marketable)."""
    if order.type is domain.OrderType.MARKET:
        return market_price(order.side, quote, slippage_bps=config.slippage_bps, tick_size=tick_size)
    return quote.ask if order.side is domain.Side.BUY else quote.bid


def on_arrival(
    order: WorkingOrder, quote: domain.Quote, *, config: VenueConfig, tick_size: Decimal
) -> Arrival:
    """Fill, rest or cancel a new order against the current quote."""
    if not is_marketable(order, quote):
        if order.time_in_force is domain.TimeInForce.IOC:
            return Arrival(execution=None, status=domain.OrderStatus.CANCELED)
        return Arrival(execution=None, status=domain.OrderStatus.NEW)
    price = arrival_price(order, quote, config=config, tick_size=tick_size)
    fee = accounting.fee_for(order.remaining, price, config.fee_bps)
    execution = Execution(quantity=order.remaining, price=price, fee=fee, liquidity="taker")
    return Arrival(execution=execution, status=domain.OrderStatus.FILLED)


def on_tick(
    order: WorkingOrder, quote: domain.Quote, *, config: VenueConfig, lot_size: Decimal
) -> Execution | None:
    """The execution a resting limit order gets from one tick, if the tick crosses it."""
    if order.limit_price is None or order.remaining <= 0 or not is_marketable(order, quote):
        return None
    available = round_to_step(quote.size, lot_size, decimal.ROUND_FLOOR)
    quantity = min(order.remaining, available)
    if quantity <= 0:
        return None
    fee = accounting.fee_for(quantity, order.limit_price, config.fee_bps)
    return Execution(quantity=quantity, price=order.limit_price, fee=fee, liquidity="maker")


def status_after(order: WorkingOrder, filled: Decimal) -> domain.OrderStatus:
    """Status of an order once ``filled`` of it has executed in total."""
    if filled >= order.quantity:
        return domain.OrderStatus.FILLED
    if filled > 0:
        return domain.OrderStatus.PARTIALLY_FILLED
    return domain.OrderStatus.NEW


def day_expired(order: WorkingOrder, now: datetime) -> bool:
    """A ``day`` order lives until the end of the UTC day it was created on."""
    return (
        order.time_in_force is domain.TimeInForce.DAY
        and order.created_at is not None
        and order.created_at.date() < now.date()
    )
