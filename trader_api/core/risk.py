"""Pre-trade risk checks, the fill-time guard and the monitors that halt trading.

Checks run in a fixed order and the first refusal wins; each refusal names its rule
(``risk_state``, ``stale_quote``, ``price_collar``, ``max_order_notional``,
``max_position_notional``, ``max_gross_exposure``, and ``reduce_only`` for protective
orders) so a client can tell them apart.

Pre-trade checks assume the worst case: every open order on the same side fills. The
venue repeats the notional checks at fill time (:func:`check_fill`), so a resting order
whose fill would breach a limit that changed meanwhile is canceled instead of filled.
"""

from __future__ import annotations

import dataclasses
import decimal
from datetime import date, datetime
from decimal import Decimal

from sapphire.domain.risk import NotionalLimits
from sapphire.trader_api.core import accounting, domain


@dataclasses.dataclass(frozen=True)
class RiskLimits(NotionalLimits):
    """The account's limits: the notional ones every layer shares, and the account's own."""

    max_drawdown: Decimal
    price_collar_bps: Decimal
    stale_quote_seconds: Decimal


@dataclasses.dataclass(frozen=True)
class Refusal:
    rule: str
    message: str


@dataclasses.dataclass(frozen=True)
class OrderIntent:
    symbol: str
    side: domain.Side
    quantity: Decimal
    price: Decimal
    """The price the order is expected to fill at in the worst case (limit price, or the
    market order's slipped touch)."""
    limit_price: Decimal | None = None
    pending_same_side: Decimal = Decimal(0)
    """Unfilled quantity of this instrument's other open orders on the same side."""


def _reduces(held: Decimal, signed: Decimal) -> bool:
    """Whether adding ``signed`` to ``held`` shrinks the position without flipping it."""
    after = held + signed
    return held != 0 and abs(after) < abs(held) and (after == 0 or (after > 0) == (held > 0))


def _notional_refusal(
    *,
    portfolio: accounting.Portfolio,
    limits: RiskLimits,
    symbol: str,
    signed: Decimal,
    price: Decimal,
) -> Refusal | None:
    held = portfolio.position(symbol).quantity
    if _reduces(held, signed):
        return None  # shrinking a position is always allowed, whatever the limits
    with decimal.localcontext(accounting.CONTEXT):
        position_notional = abs(held + signed) * price
        if position_notional > limits.max_position_notional:
            return Refusal(
                "max_position_notional",
                f"position in {symbol} would be {position_notional} notional, above the limit "
                f"max_position_notional={limits.max_position_notional}",
            )
        # The portfolio's gross exposure is worked out once per portfolio (an order's check
        # and its fill's see the same one); taking this symbol's part out is exact in CONTEXT.
        others = portfolio.gross_exposure - abs(portfolio.position(symbol).market_value)
        gross = others + position_notional
        if gross > limits.max_gross_exposure:
            return Refusal(
                "max_gross_exposure",
                f"gross exposure would be {gross}, "
                f"above the limit max_gross_exposure={limits.max_gross_exposure}",
            )
    return None


def check_order(
    *,
    intent: OrderIntent,
    portfolio: accounting.Portfolio,
    limits: RiskLimits,
    state: domain.RiskState,
    quote: domain.Quote | None,
    now: datetime,
) -> Refusal | None:
    """The first rule a new order breaks, or ``None`` when it may go to the venue."""
    held = portfolio.position(intent.symbol).quantity
    signed = intent.quantity * intent.side.sign
    if state is domain.RiskState.HALTED:
        return Refusal("risk_state", "trading is HALTED: no order is accepted")
    if state is domain.RiskState.REDUCING and not _reduces(held, signed):
        return Refusal(
            "risk_state",
            f"risk state is REDUCING: only orders that shrink the {intent.symbol} position are accepted",
        )
    stale = _stale(quote, intent.symbol, limits, now)
    if stale is not None or quote is None:
        return stale
    with decimal.localcontext(accounting.CONTEXT):
        if intent.limit_price is not None:
            mid = quote.mid
            distance_bps = abs(intent.limit_price - mid) / mid * 10_000
            if distance_bps > limits.price_collar_bps:
                return Refusal(
                    "price_collar",
                    f"limit_price {intent.limit_price} is {distance_bps:.1f} bps from the mid {mid}, beyond "
                    f"price_collar_bps={limits.price_collar_bps}",
                )
        notional = intent.quantity * intent.price
        if notional > limits.max_order_notional:
            return Refusal(
                "max_order_notional",
                f"order notional {notional} is above the limit "
                f"max_order_notional={limits.max_order_notional}",
            )
        worst = signed + intent.pending_same_side * intent.side.sign
    return _notional_refusal(
        portfolio=portfolio, limits=limits, symbol=intent.symbol, signed=worst, price=intent.price
    )


def _stale(quote: domain.Quote | None, symbol: str, limits: RiskLimits, now: datetime) -> Refusal | None:
    if quote is None:
        return Refusal("stale_quote", f"no quote for {symbol} yet: orders need fresh market data")
    age = quote.age_seconds(now)
    if age > limits.stale_quote_seconds:
        return Refusal(
            "stale_quote",
            f"the {symbol} quote is {age:.3f}s old, above stale_quote_seconds={limits.stale_quote_seconds}",
        )
    return None


def check_protective(
    *,
    symbol: str,
    side: domain.Side,
    quantity: Decimal,
    portfolio: accounting.Portfolio,
    limits: RiskLimits,
    quote: domain.Quote | None,
    now: datetime,
) -> Refusal | None:
    """The rule for stops, take-profits and trailing stops (``core/triggers.py``).

    They only ever reduce a position: one is accepted when it would shrink the position
    without flipping it, in any risk state (ACTIVE, REDUCING and HALTED alike), and the
    notional limits do not apply, since reducing is always allowed. A fresh quote is still
    needed. When it fires, it is cut to the position then left (or canceled if none is),
    and each of its fills is checked again by :func:`check_fill`."""
    held = portfolio.position(symbol).quantity
    if not _reduces(held, quantity * side.sign):
        return Refusal(
            "reduce_only",
            f"a protective order only reduces a position: {side.value} {quantity} {symbol} would not "
            f"shrink the position of {held} without flipping it",
        )
    return _stale(quote, symbol, limits, now)


def check_fill(
    *,
    portfolio: accounting.Portfolio,
    limits: RiskLimits,
    state: domain.RiskState,
    symbol: str,
    side: domain.Side,
    quantity: Decimal,
    price: Decimal,
    protective: bool = False,
) -> Refusal | None:
    """Whether the venue may execute this fill now (the last line of defence).

    A protective order's fill must reduce the position; then it passes in any state."""
    signed = quantity * side.sign
    held = portfolio.position(symbol).quantity
    if protective:
        if _reduces(held, signed):
            return None
        return Refusal("reduce_only", f"the fill would not reduce the {symbol} position of {held}")
    if state is domain.RiskState.HALTED:
        return Refusal("risk_state", "trading is HALTED")
    if state is domain.RiskState.REDUCING and not _reduces(held, signed):
        return Refusal("risk_state", "risk state is REDUCING")
    with decimal.localcontext(accounting.CONTEXT):
        if quantity * price > limits.max_order_notional:
            return Refusal("max_order_notional", "fill notional above max_order_notional")
    return _notional_refusal(portfolio=portfolio, limits=limits, symbol=symbol, signed=signed, price=price)


@dataclasses.dataclass(frozen=True)
class Watermarks:
    """What the loss monitors remember: the UTC day, equity when it began, and peak equity."""

    trading_day: date
    day_start_equity: Decimal
    peak_equity: Decimal


def roll_watermarks(watermarks: Watermarks, *, equity: Decimal, today: date) -> Watermarks:
    """Start a new day's loss budget at midnight UTC and raise the peak."""
    if today != watermarks.trading_day:
        return Watermarks(
            trading_day=today, day_start_equity=equity, peak_equity=max(watermarks.peak_equity, equity)
        )
    if equity > watermarks.peak_equity:
        return dataclasses.replace(watermarks, peak_equity=equity)
    return watermarks  # unchanged (the usual case): no copy


def breach(watermarks: Watermarks, *, equity: Decimal, limits: RiskLimits) -> str | None:
    """Why trading must halt now (daily loss or drawdown beyond its limit), or ``None``."""
    with decimal.localcontext(accounting.CONTEXT):
        daily_loss = watermarks.day_start_equity - equity
        if daily_loss >= limits.max_daily_loss:
            return f"max_daily_loss: equity fell {daily_loss} today (limit {limits.max_daily_loss})"
        if watermarks.peak_equity > 0:
            drawdown = (watermarks.peak_equity - equity) / watermarks.peak_equity
            if drawdown >= limits.max_drawdown:
                return (
                    f"max_drawdown: equity is {drawdown:.4%} below its peak {watermarks.peak_equity} "
                    f"(limit {limits.max_drawdown:%})"
                )
    return None
