"""Brackets: the stop and the take-profit an entry attaches to its own fills.

An entry (a market or limit order) may carry :class:`records.Attached`. Each time it
fills, the engine makes its two legs cover everything it has filled so far: on the first
fill it creates them, on later fills of the same entry it raises their quantity (and moves
the prices given in bps to the new average price) while they still wait for their trigger.

* The legs are on the other side of the entry, reduce-only protective orders
  (``stop`` or ``trailing_stop``, and ``take_profit``), in one OCO group: the first fill of
  one cancels the other, and the entry's unfilled remainder too (the position is being
  exited; buying more of it then would be the opposite of what the bracket is for).
* They protect no more than the position on the entry's side: an entry that only reduced
  or closed a position attaches nothing, and one that flipped it protects the new part.
* Prices in bps are taken from the entry's average fill price and rounded to the tick:
  a stop toward the entry, so the loss is never more than ``stop_bps``; a take-profit away
  from it, so the gain is never less than ``take_profit_bps``. For a long entry both round
  up, for a short both round down. No price is ever below one tick.
* A leg canceled (by request, or because no position was left) is not attached again.
"""

from __future__ import annotations

import dataclasses
import decimal
import uuid
from decimal import Decimal

from sapphire.domain.decimals import round_to_step
from sapphire.trader_api.core import accounting, domain
from sapphire.trader_api.core.records import Attached

STOP, TAKE_PROFIT = "stop", "take_profit"
"""The names of the two legs (the ends of their ``client_order_id``)."""


@dataclasses.dataclass(frozen=True)
class Leg:
    name: str
    type: domain.OrderType
    stop_price: Decimal | None = None
    """``None`` for a trailing stop: its stop follows the touch from its first quote."""
    trail_amount: Decimal | None = None
    trail_bps: Decimal | None = None


def leg_client_order_id(entry_id: uuid.UUID, name: str) -> str:
    """A leg's ``client_order_id``. The ``/`` is outside the pattern clients may use, so
    no request can ever take (or replay) a leg's id."""
    return f"bracket/{entry_id}/{name}"


def oco_group(entry_id: uuid.UUID) -> str:
    return f"bracket-{entry_id}"


def _away(price: Decimal, bps: Decimal, *, up: bool, tick_size: Decimal, rounding: str) -> Decimal:
    with decimal.localcontext(accounting.CONTEXT):
        offset = price * bps / 10_000
        target = price + offset if up else price - offset
        return max(round_to_step(target, tick_size, rounding), tick_size)


def legs(side: domain.Side, attached: Attached, *, average_price: Decimal, tick_size: Decimal) -> list[Leg]:
    """The legs of an entry on ``side`` whose fills average ``average_price``."""
    long = side is domain.Side.BUY
    rounding = decimal.ROUND_CEILING if long else decimal.ROUND_FLOOR
    found: list[Leg] = []
    if attached.stop_price is not None:
        found.append(Leg(STOP, domain.OrderType.STOP, stop_price=attached.stop_price))
    elif attached.stop_bps is not None:
        stop = _away(average_price, attached.stop_bps, up=not long, tick_size=tick_size, rounding=rounding)
        found.append(Leg(STOP, domain.OrderType.STOP, stop_price=stop))
    elif attached.trail_amount is not None or attached.trail_bps is not None:
        found.append(
            Leg(
                STOP,
                domain.OrderType.TRAILING_STOP,
                trail_amount=attached.trail_amount,
                trail_bps=attached.trail_bps,
            )
        )
    if attached.take_profit_price is not None:
        found.append(Leg(TAKE_PROFIT, domain.OrderType.TAKE_PROFIT, stop_price=attached.take_profit_price))
    elif attached.take_profit_bps is not None:
        target = _away(
            average_price, attached.take_profit_bps, up=long, tick_size=tick_size, rounding=rounding
        )
        found.append(Leg(TAKE_PROFIT, domain.OrderType.TAKE_PROFIT, stop_price=target))
    return found


def protected_quantity(side: domain.Side, *, filled: Decimal, held: Decimal) -> Decimal:
    """How much the legs cover: the entry's fills, at most the position on the entry's side."""
    return min(filled, max(Decimal(0), side.sign * held))
