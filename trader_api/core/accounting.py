"""Exact portfolio accounting: cash, positions, average price, realized and unrealized PnL.

A position keeps its signed **cost basis** (quantity x average entry price) rather than
the average price itself, so adding to a position never divides. Only a partial close
divides (the share of the cost basis that leaves); that share is rounded to
:data:`COST_QUANTUM` and the realized PnL is computed from the *rounded* share, so the
books always balance exactly:

    equity = cash + sum(quantity x mark)
    realized + unrealized - fees = equity - initial equity

Every operation runs in :data:`CONTEXT` (80 significant digits): wire decimals have at
most 28 digits, so products and sums are exact and never silently rounded.
"""

from __future__ import annotations

import dataclasses
import decimal
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Generic, TypeVar, overload

from sapphire.domain.decimals import CONTEXT as CONTEXT
from sapphire.trader_api.core import domain

COST_QUANTUM = Decimal("1e-12")
"""Rounding step of the cost basis left after a partial close."""
FEE_QUANTUM = Decimal("1e-8")
"""Rounding step of fees (rounded up: the venue never undercharges)."""
ZERO = Decimal(0)

_T = TypeVar("_T")


class computed_once(Generic[_T]):  # noqa: N801 (named like the decorator it stands for)
    """``functools.cached_property`` without its lock: Python 3.11's takes an RLock on every
    first read, which cost more than the sums below (a new portfolio for every tick). The
    values are immutable and the engine runs on one thread: two threads computing the same
    figure at once would store the same value."""

    def __init__(self, function: Callable[[Any], _T]) -> None:
        self.function = function
        self.name = function.__name__
        self.__doc__ = function.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> computed_once[_T]: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> _T: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> _T | computed_once[_T]:
        if instance is None:
            return self
        value = self.function(instance)
        instance.__dict__[self.name] = value  # read from the instance from now on, past this descriptor
        return value


@dataclasses.dataclass(frozen=True)
class Fill:
    """One execution, as accounting sees it."""

    symbol: str
    side: domain.Side
    quantity: Decimal
    price: Decimal
    fee: Decimal


@dataclasses.dataclass(frozen=True)
class Position:
    symbol: str
    quantity: Decimal = ZERO
    """Signed: positive long, negative short."""
    cost_basis: Decimal = ZERO
    """Signed quantity x average entry price of the open quantity."""
    realized_pnl: Decimal = ZERO
    """Gross of fees (fees are booked on the account)."""
    mark: Decimal = ZERO
    """Last price the position was valued at: the quote mid, or the last fill price."""

    # Positions and portfolios are immutable values (every change makes a new one), so each
    # figure is computed once: the risk rules, the engine and the published portfolio read
    # the same figures several times for every order. The figures every tick recomputes call
    # CONTEXT's own methods: the same operations in the same context as ``localcontext``,
    # without copying the context each time.
    @computed_once
    def average_price(self) -> Decimal:
        if self.quantity == 0:
            return ZERO
        with decimal.localcontext(CONTEXT):
            return (self.cost_basis / self.quantity).quantize(COST_QUANTUM).normalize()

    @computed_once
    def market_value(self) -> Decimal:
        return CONTEXT.multiply(self.quantity, self.mark)

    @computed_once
    def unrealized_pnl(self) -> Decimal:
        return CONTEXT.subtract(CONTEXT.multiply(self.quantity, self.mark), self.cost_basis)


@dataclasses.dataclass(frozen=True)
class Portfolio:
    cash: Decimal
    fees: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    positions: Mapping[str, Position] = dataclasses.field(default_factory=dict)

    def position(self, symbol: str) -> Position:
        return self.positions.get(symbol) or Position(symbol=symbol)

    @computed_once
    def equity(self) -> Decimal:
        held = ZERO
        for position in self.positions.values():
            held = CONTEXT.add(held, position.market_value)
        return CONTEXT.add(self.cash, held)

    @computed_once
    def unrealized_pnl(self) -> Decimal:
        total = ZERO
        for position in self.positions.values():
            total = CONTEXT.add(total, position.unrealized_pnl)
        return total

    @computed_once
    def gross_exposure(self) -> Decimal:
        total = ZERO
        for position in self.positions.values():
            total = CONTEXT.add(total, CONTEXT.abs(position.market_value))
        return total


def average_fill_price(filled_notional: Decimal, filled_quantity: Decimal) -> Decimal | None:
    """Quantity-weighted price of an order's fills (rounded to 1e-12), ``None`` before the first."""
    if not filled_quantity:
        return None
    with decimal.localcontext(CONTEXT):
        return (filled_notional / filled_quantity).quantize(COST_QUANTUM).normalize()


def fee_for(quantity: Decimal, price: Decimal, fee_bps: Decimal) -> Decimal:
    """The venue's fee on one execution: ``fee_bps`` of its notional, rounded up to FEE_QUANTUM."""
    with decimal.localcontext(CONTEXT):
        return (quantity * price * fee_bps / 10_000).quantize(FEE_QUANTUM, rounding=decimal.ROUND_CEILING)


def apply_to_position(position: Position, side: domain.Side, quantity: Decimal, price: Decimal) -> Position:
    """The position after buying or selling ``quantity`` at ``price``; realized PnL accrues on closes."""
    with decimal.localcontext(CONTEXT):
        signed = quantity * side.sign
        held = position.quantity
        if held == 0 or (held > 0) == (signed > 0):
            return dataclasses.replace(
                position, quantity=held + signed, cost_basis=position.cost_basis + signed * price, mark=price
            )
        closing = min(quantity, abs(held))
        if closing == abs(held):
            removed = position.cost_basis
        else:
            removed = (position.cost_basis * closing / abs(held)).quantize(COST_QUANTUM).normalize()
        direction = 1 if held > 0 else -1
        realized = direction * closing * price - removed
        opening = quantity - closing  # a close larger than the position flips it
        return Position(
            symbol=position.symbol,
            quantity=held + signed,
            cost_basis=position.cost_basis - removed + side.sign * opening * price,
            realized_pnl=position.realized_pnl + realized,
            mark=price,
        )


def apply_fill(portfolio: Portfolio, fill: Fill) -> Portfolio:
    """The portfolio after one execution: cash moves by the notional and the fee."""
    with decimal.localcontext(CONTEXT):
        before = portfolio.position(fill.symbol)
        after = apply_to_position(before, fill.side, fill.quantity, fill.price)
        positions = dict(portfolio.positions)
        positions[fill.symbol] = after
        return Portfolio(
            cash=portfolio.cash - fill.side.sign * fill.quantity * fill.price - fill.fee,
            fees=portfolio.fees + fill.fee,
            realized_pnl=portfolio.realized_pnl + (after.realized_pnl - before.realized_pnl),
            positions=positions,
        )


def mark_to_market(portfolio: Portfolio, symbol: str, mark: Decimal) -> Portfolio:
    """Value ``symbol`` at ``mark`` from now on; a symbol without a position is left alone."""
    held = portfolio.positions.get(symbol)
    if held is None:
        return portfolio
    # Built field by field rather than by dataclasses.replace: this runs for every tick.
    positions = dict(portfolio.positions)
    positions[symbol] = Position(
        symbol=held.symbol,
        quantity=held.quantity,
        cost_basis=held.cost_basis,
        realized_pnl=held.realized_pnl,
        mark=mark,
    )
    return Portfolio(
        cash=portfolio.cash, fees=portfolio.fees, realized_pnl=portfolio.realized_pnl, positions=positions
    )
