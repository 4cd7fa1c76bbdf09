"""Signals, agents and headlines on the wire."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from sapphire.domain.signals import Direction as Direction
from sapphire.trader_api.schemas.common import (
    SIGNED_UNIT,
    UNIT,
    Amount,
    DecimalString,
    Name,
    PublicModel,
    Role,
    ShortText,
    Symbol,
    Text,
    Timestamp,
    WireModel,
)


class SignalCreate(WireModel):
    agent: Name
    role: Role
    symbol: Symbol
    direction: Direction
    strength: Annotated[Decimal, SIGNED_UNIT, DecimalString]
    confidence: Annotated[Decimal, UNIT, DecimalString]
    horizon_seconds: int = Field(ge=1, le=31_536_000)
    rationale: Text = ""
    model: ShortText | None = None
    ts: Timestamp | None = Field(
        default=None,
        description="When the analyst formed the signal (kept as given, at most 60 s ahead of the "
        "API's clock); absent: the time the API received it.",
    )


class SignalPublic(PublicModel):
    id: uuid.UUID
    agent: str
    role: str
    symbol: str
    direction: Direction
    strength: Amount
    confidence: Amount
    horizon_seconds: int
    rationale: str
    model: str | None
    ts: datetime = Field(description="When the analyst formed the signal.")
    created_at: datetime = Field(description="When the API stored it.")


class HeartbeatCreate(WireModel):
    role: Role
    symbols: list[Symbol] = Field(
        default_factory=list, max_length=1000, description="Empty: all-market mode."
    )
    model: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="The agent's LLM as `provider/name`; null when it runs deterministically."
    )


class AgentPublic(PublicModel):
    name: str
    role: str
    symbols: list[str]
    registered_at: datetime
    last_heartbeat_at: datetime
    model: str | None = Field(description="The agent's LLM as `provider/name`; null: deterministic.")
    alive: bool = Field(
        description="A heartbeat arrived within the last agent_stale_after_seconds (default 60)."
    )


class AgentStatsPublic(PublicModel):
    name: str
    last_signal_at: datetime | None
    signals_last_hour: int
    signal_count: int
    orders: int
    open_orders: int
    filled_orders: int
    orders_last_hour: int
    fills: int
    realized_pnl: Amount = Field(
        description="Realized PnL (gross of fees) of the agent's own fills, booked as a sub-account."
    )
    unrealized_pnl: Amount = Field(description="The agent's sub-account marked at the current marks.")
    gross_exposure: Amount = Field(description="Sum of |quantity| x mark of the agent's sub-account.")
    fees: Amount
    last_heartbeat_at: datetime | None


class HeadlineCreate(WireModel):
    symbol: Symbol | None = None
    text: Annotated[Text, Field(min_length=1, max_length=5000)]
    source: ShortText
    ts: Timestamp


class HeadlinePublic(PublicModel):
    id: uuid.UUID
    symbol: str | None
    text: str
    source: str
    ts: datetime
    created_at: datetime
