"""Orders and fills on the wire."""

from __future__ import annotations

import uuid
from datetime import datetime

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

    @model_validator(mode="after")
    def _limit_price_matches_type(self) -> OrderCreate:
        if self.type is OrderType.LIMIT and self.limit_price is None:
            raise ValueError("limit_price: required for limit orders")
        if self.type is OrderType.MARKET and self.limit_price is not None:
            raise ValueError("limit_price: must be omitted for market orders")
        return self


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
