"""Orders and fills on the wire."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from pydantic import Field, model_validator

from sapphire.trader_api.core.domain import OrderStatus, OrderType, Side, TimeInForce
from sapphire.trader_api.schemas.common import Amount, Name, Price, PublicModel, Quantity, Symbol, WireModel


class OrderCreate(WireModel):
    client_order_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
        description="Idempotency key: resending the same body returns the same order.",
    )
    symbol: Symbol
    side: Side
    type: OrderType
    quantity: Quantity
    limit_price: Price | None = Field(default=None, description="Required for limit orders only.")
    time_in_force: TimeInForce = TimeInForce.GTC
    agent: Name | None = Field(default=None, description="Agent the order is attributed to (PnL).")
    stop_price: Price | None = Field(
        default=None,
        description="The trigger of a stop, stop_limit, take_profit or take_profit_limit order.",
    )
    trail_amount: Price | None = Field(
        default=None, description="trailing_stop: the stop follows the touch at this distance."
    )
    trail_bps: Decimal | None = Field(
        default=None,
        gt=0,
        lt=10_000,
        max_digits=24,
        decimal_places=12,
        description="trailing_stop: the distance in basis points of the touch (instead of trail_amount).",
    )
    oco_group: Name | None = Field(
        default=None, description="Orders sharing a group cancel each other: the first fill cancels the rest."
    )

    @model_validator(mode="after")
    def _prices_match_type(self) -> OrderCreate:
        problem = shape_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self


class OrderShape(Protocol):
    """The fields that decide which prices an order needs (any decoded order body)."""

    @property
    def type(self) -> OrderType: ...
    @property
    def limit_price(self) -> Decimal | None: ...
    @property
    def stop_price(self) -> Decimal | None: ...
    @property
    def trail_amount(self) -> Decimal | None: ...
    @property
    def trail_bps(self) -> Decimal | None: ...


def shape_problem(order: OrderShape) -> str | None:
    """Which price field the order's type requires or forbids (the message names it)."""
    kind = order.type.value
    if order.type.takes_limit_price and order.limit_price is None:
        return f"limit_price: required for {kind} orders"
    if not order.type.takes_limit_price and order.limit_price is not None:
        return f"limit_price: must be omitted for {kind} orders"
    if order.type.takes_stop_price and order.stop_price is None:
        return f"stop_price: required for {kind} orders"
    if not order.type.takes_stop_price and order.stop_price is not None:
        return f"stop_price: must be omitted for {kind} orders"
    trails = (order.trail_amount is not None) + (order.trail_bps is not None)
    if order.type is OrderType.TRAILING_STOP and trails != 1:
        return "trail_amount: a trailing_stop needs exactly one of trail_amount and trail_bps"
    if order.type is not OrderType.TRAILING_STOP and trails:
        field = "trail_amount" if order.trail_amount is not None else "trail_bps"
        return f"{field}: only for trailing_stop orders"
    return None


class OrderPublic(PublicModel):
    id: uuid.UUID
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    quantity: Amount
    limit_price: Amount | None
    status: OrderStatus
    filled_quantity: Amount
    average_price: Amount | None
    fees: Amount
    agent: str | None
    reason: str
    created_at: datetime
    updated_at: datetime
    stop_price: Amount | None = None
    trail_amount: Amount | None = None
    trail_bps: Amount | None = None
    oco_group: str | None = None
    triggered_at: datetime | None = None


class FillPublic(PublicModel):
    id: uuid.UUID
    order_id: uuid.UUID
    symbol: str
    side: Side
    quantity: Amount
    price: Amount
    fee: Amount
    liquidity: str
    realized_pnl: Amount
    agent: str | None
    ts: datetime
