"""Position sizing: a consensus score becomes one order that respects every risk limit.

Pure Decimal arithmetic, no I/O, so the property tests can throw anything at it. Notional
is always measured at a deliberately conservative unit price, ``max(ask, limit price)``,
which is at least any mark the trader API may use; staying inside the limits at that price
means staying inside them at the API's price too.

The guarantees, whatever the inputs (checked by hypothesis in the tests):

* ``quantity * unit ≤ max_order_notional`` for every order;
* an order never takes ``|position| * unit`` above ``max_position_notional`` nor the gross
  exposure above ``max_gross_exposure``; orders that reduce exposure are always allowed;
* under ``REDUCING``, or once the day's loss reaches ``max_daily_loss``, orders only reduce
  (no increase, no flip through zero); under ``HALTED`` there is no order at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from sapphire.agents import market
from sapphire.domain import decimals
from sapphire.domain.risk import NotionalLimits

_ZERO = Decimal(0)


@dataclass(frozen=True)
class Instrument:
    symbol: str
    tick_size: Decimal
    lot_size: Decimal


@dataclass(frozen=True)
class OrderPlan:
    """What to send: a marketable limit order (IOC) bounded by its collar."""

    symbol: str
    side: str
    quantity: Decimal
    limit_price: Decimal
    position_before: Decimal
    position_after: Decimal
    target: Decimal
    reduce_only: bool


def round_to_step(value: Decimal, step: Decimal, *, up: bool = False) -> Decimal:
    """``value`` on the ``step`` grid, rounded down (toward -inf) or up, without trailing zeros
    (the order's quantity and price as the API is sent them)."""
    return decimals.round_to_step(value, step, ROUND_CEILING if up else ROUND_FLOOR).normalize()


def _toward_zero(value: Decimal, step: Decimal) -> Decimal:
    magnitude = round_to_step(abs(value), step)
    return -magnitude if value < 0 else magnitude


def _sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


def limit_price(*, side: str, bid: Decimal, ask: Decimal, tick_size: Decimal, collar_bps: Decimal) -> Decimal:
    """A marketable limit: through the touch by ``collar_bps``, on the tick grid, never below one tick."""
    collar = collar_bps / Decimal(10_000)
    if side == "buy":
        return round_to_step(ask * (1 + collar), tick_size, up=True)
    return max(round_to_step(bid * (1 - collar), tick_size), tick_size if tick_size > 0 else bid)


def plan_order(
    *,
    instrument: Instrument,
    score: Decimal,
    bid: Decimal,
    ask: Decimal,
    position: Decimal,
    other_exposure: Decimal,
    limits: NotionalLimits,
    daily_pnl: Decimal,
    risk_state: market.RiskState,
    collar_bps: Decimal = Decimal(10),
    min_order_fraction: Decimal = Decimal("0.02"),
) -> OrderPlan | None:
    """The order that moves ``position`` toward ``score * max_position_notional``, or None.

    ``other_exposure`` is the gross notional already held in every other symbol. Small
    rebalances (under ``min_order_fraction`` of the position limit) are skipped so that a
    jittering score does not churn fees, except when closing a position out completely.
    """
    if risk_state is market.RiskState.HALTED or bid <= 0 or ask <= 0 or ask < bid:
        return None
    lot = instrument.lot_size
    mid = (bid + ask) / 2
    clipped = max(Decimal(-1), min(Decimal(1), score))
    target = _toward_zero(clipped * limits.max_position_notional / mid, lot)

    reduce_only = risk_state is market.RiskState.REDUCING or daily_pnl <= -limits.max_daily_loss
    if reduce_only:
        # Hold or shrink toward the target, never grow or flip through zero.
        target = (
            Decimal(_sign(target)) * min(abs(target), abs(position))
            if _sign(target) == _sign(position)
            else _ZERO
        )

    side = "buy" if target > position else "sell"
    price = limit_price(side=side, bid=bid, ask=ask, tick_size=instrument.tick_size, collar_bps=collar_bps)
    if side == "sell" and price > bid:
        return None  # a bid below one tick leaves no marketable sell price on the grid
    unit = max(ask, price)

    # The new position's magnitude may grow only up to what the position and gross limits allow.
    room = min(limits.max_position_notional, limits.max_gross_exposure - other_exposure)
    allowed = round_to_step(max(room, _ZERO) / unit, lot)
    new = target
    if _sign(new) == _sign(position) or position == 0:
        cap = max(allowed, abs(position)) if position != 0 else allowed
        new = Decimal(_sign(new)) * min(abs(new), cap)
    else:
        new = Decimal(_sign(new)) * min(abs(new), allowed)

    delta = new - position
    max_quantity = round_to_step(limits.max_order_notional / unit, lot)
    if abs(delta) > max_quantity:
        delta = Decimal(_sign(delta)) * max_quantity
    delta = _toward_zero(delta, lot)
    if delta == 0:
        return None
    closing_out = position + delta == 0
    if not closing_out and abs(delta) * unit < min_order_fraction * limits.max_position_notional:
        return None
    return OrderPlan(
        symbol=instrument.symbol,
        side="buy" if delta > 0 else "sell",
        quantity=abs(delta),
        limit_price=price,
        position_before=position,
        position_after=position + delta,
        target=target,
        reduce_only=abs(position + delta) <= abs(position) and _sign(position + delta) * _sign(position) >= 0,
    )
