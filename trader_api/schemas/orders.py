"""Orders and fills on the wire."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Protocol

from pydantic import ConfigDict, Field, model_validator

from sapphire.trader_api.core.domain import OrderStatus, OrderType, Side, TimeInForce
from sapphire.trader_api.schemas.common import (
    BPS,
    WIDE_BPS,
    Amount,
    DecimalString,
    Name,
    Price,
    PublicModel,
    Quantity,
    Symbol,
    WireModel,
)

Bps = Annotated[Decimal, BPS, DecimalString]
"""A distance in basis points of a price, below 100%."""
WideBps = Annotated[Decimal, WIDE_BPS, DecimalString]
"""A take-profit's distance: up to 1,000% away."""


class AttachedCreate(WireModel):
    """The legs a bracket entry attaches to its fills (``core/brackets.py``): at most one
    stop (``stop_price``, ``stop_bps``, ``trail_amount`` or ``trail_bps``) and at most one
    take-profit (``take_profit_price`` or ``take_profit_bps``). Distances in bps are taken
    from the entry's average fill price and rounded to the tick (a stop toward the entry, a
    take-profit away from it)."""

    model_config = ConfigDict(json_schema_extra=lambda schema: schema.update(allOf=_legs_schema()))

    stop_price: Price | None = Field(default=None, description="A stop leg at this price.")
    stop_bps: Bps | None = Field(default=None, description="A stop leg this many bps against the entry.")
    trail_amount: Price | None = Field(default=None, description="A trailing stop leg at this distance.")
    trail_bps: Bps | None = Field(default=None, description="A trailing stop leg this many bps behind.")
    take_profit_price: Price | None = Field(default=None, description="A take-profit leg at this price.")
    take_profit_bps: WideBps | None = Field(
        default=None, description="A take-profit leg this many bps in the position's favour."
    )


class OrderCreate(WireModel):
    model_config = ConfigDict(json_schema_extra=lambda schema: schema.update(allOf=_shape_schema()))

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
    trail_bps: Bps | None = Field(
        default=None,
        description="trailing_stop: the distance in basis points of the touch (instead of trail_amount).",
    )
    oco_group: Name | None = Field(
        default=None, description="Orders sharing a group cancel each other: the first fill cancels the rest."
    )
    attached: AttachedCreate | None = Field(
        default=None,
        description="Market and limit orders: a bracket. Each fill attaches (or extends) a reduce-only "
        "stop and take-profit in one OCO group, covering what the order has filled.",
    )

    @model_validator(mode="after")
    def _prices_match_type(self) -> OrderCreate:
        problem = shape_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self


REPLACED_FIELDS = ("quantity", "limit_price", "stop_price", "trail_amount", "trail_bps")
"""What a replace may change."""


class OrderReplace(WireModel):
    """An amend of an open order: the fields given replace the order's, the others stay."""

    # The document states the rule of ``_changes_something``: at least one field, not null.
    model_config = ConfigDict(
        json_schema_extra=lambda schema: schema.update(
            anyOf=[{"required": [name], "properties": {name: {"type": "string"}}} for name in REPLACED_FIELDS]
        )
    )

    client_order_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
        description="Idempotency key of the replace (the same index as submits'): resending the same "
        "body answers the amended order again; another body with it is a 409.",
    )
    quantity: Quantity | None = Field(
        default=None, description="The new total quantity, counting what already filled."
    )
    limit_price: Price | None = Field(default=None, description="limit, stop_limit, take_profit_limit.")
    stop_price: Price | None = Field(
        default=None, description="A protective order's trigger, until it fires."
    )
    trail_amount: Price | None = Field(default=None, description="A trailing_stop by amount.")
    trail_bps: Bps | None = Field(default=None, description="A trailing_stop by bps.")

    @model_validator(mode="after")
    def _changes_something(self) -> OrderReplace:
        if all(getattr(self, name) is None for name in REPLACED_FIELDS):
            raise ValueError(f"a replace changes at least one of {', '.join(REPLACED_FIELDS)}")
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
    @property
    def oco_group(self) -> str | None: ...
    @property
    def attached(self) -> AttachedShape | None: ...


class AttachedShape(Protocol):
    @property
    def stop_price(self) -> Decimal | None: ...
    @property
    def stop_bps(self) -> Decimal | None: ...
    @property
    def trail_amount(self) -> Decimal | None: ...
    @property
    def trail_bps(self) -> Decimal | None: ...
    @property
    def take_profit_price(self) -> Decimal | None: ...
    @property
    def take_profit_bps(self) -> Decimal | None: ...


STOP_LEGS = ("stop_price", "stop_bps", "trail_amount", "trail_bps")
TAKE_PROFIT_LEGS = ("take_profit_price", "take_profit_bps")


def attached_problem(order: OrderShape) -> str | None:
    """What is wrong with a bracket's ``attached`` legs (the message names the field)."""
    attached = order.attached
    if attached is None:
        return None
    if order.type.is_protective:
        return f"attached: only market and limit orders attach legs, not {order.type.value} orders"
    if order.oco_group is not None:
        return "attached: a bracket is its own OCO group; omit oco_group"
    stops = [name for name in STOP_LEGS if getattr(attached, name) is not None]
    takes = [name for name in TAKE_PROFIT_LEGS if getattr(attached, name) is not None]
    if len(stops) > 1:
        return f"attached.{stops[1]}: one stop leg only ({' or '.join(STOP_LEGS)})"
    if len(takes) > 1:
        return f"attached.{takes[1]}: one take-profit leg only ({' or '.join(TAKE_PROFIT_LEGS)})"
    if not stops and not takes:
        return "attached: needs a stop leg, a take-profit leg, or both"
    return None


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
    return attached_problem(order)


def _given(name: str) -> dict[str, Any]:
    return {"required": [name], "properties": {name: {"type": "string"}}}


def _omitted(*names: str) -> dict[str, Any]:
    return {"properties": {name: {"type": "null"} for name in names}}


def _at_most_one(names: Sequence[str]) -> dict[str, Any]:
    return {
        "anyOf": [_omitted(*names)]
        + [{"allOf": [_given(name), _omitted(*(set(names) - {name}))]} for name in names]
    }


def _shape_schema() -> list[dict[str, Any]]:
    """:func:`shape_problem` as JSON Schema, for the document: what each order type needs
    and forbids, and the attached legs' rules (``_legs_schema``) with no ``oco_group``."""
    kinds = []
    for kind in OrderType:
        rules: list[dict[str, Any]] = [{"properties": {"type": {"const": kind.value}}}]
        for name, needed in (("limit_price", kind.takes_limit_price), ("stop_price", kind.takes_stop_price)):
            rules.append(_given(name) if needed else _omitted(name))
        trails = ("trail_amount", "trail_bps")
        if kind is OrderType.TRAILING_STOP:
            rules.append({"oneOf": [_given(name) for name in trails]})
        else:
            rules.append(_omitted(*trails))
        if kind.is_protective:
            rules.append(_omitted("attached"))
        kinds.append({"allOf": rules})
    return [{"anyOf": kinds}, {"anyOf": [_omitted("attached"), _omitted("oco_group")]}]


def _legs_schema() -> list[dict[str, Any]]:
    """:func:`attached_problem`'s rules on the legs themselves, as JSON Schema."""
    return [
        _at_most_one(STOP_LEGS),
        _at_most_one(TAKE_PROFIT_LEGS),
        {"anyOf": [_given(name) for name in (*STOP_LEGS, *TAKE_PROFIT_LEGS)]},
    ]


class AttachedPublic(PublicModel):
    stop_price: Amount | None = None
    stop_bps: Amount | None = None
    trail_amount: Amount | None = None
    trail_bps: Amount | None = None
    take_profit_price: Amount | None = None
    take_profit_bps: Amount | None = None


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
    attached: AttachedPublic | None = None
    parent_id: uuid.UUID | None = Field(
        default=None, description="A bracket leg: the entry that attached it."
    )
    exchange_order_id: str | None = Field(
        default=None, description="A live venue's id of the order, once the exchange has answered."
    )


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
