"""Instruments, ticks, quotes and bars on the wire."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, model_validator

from sapphire.trader_api.core.bars import Interval
from sapphire.trader_api.schemas.common import (
    Amount,
    Price,
    PublicModel,
    Size,
    Symbol,
    Timestamp,
    WireModel,
)


class InstrumentPublic(PublicModel):
    symbol: str
    tick_size: Amount
    lot_size: Amount
    quote_currency: str


class TickCreate(WireModel):
    symbol: Symbol
    bid: Price
    ask: Price
    last: Price
    size: Size = Field(description="Size of the last trade; 0 when the tick only moved the book.")
    ts: Timestamp

    @model_validator(mode="after")
    def _book_not_crossed(self) -> TickCreate:
        if self.bid > self.ask:
            raise ValueError(f"ask: must be >= bid ({self.bid}), got {self.ask}")
        return self


class TickBatch(WireModel):
    ticks: list[TickCreate] = Field(min_length=1, max_length=5000)


class TicksAccepted(PublicModel):
    accepted: int


class QuotePublic(PublicModel):
    symbol: str
    bid: Amount
    ask: Amount
    last: Amount
    size: Amount
    ts: datetime
    stale: bool = Field(description="True when the quote is older than the stale_quote_seconds risk limit.")


class BarPublic(PublicModel):
    symbol: str
    interval: Interval
    start: datetime
    open: Amount
    high: Amount
    low: Amount
    close: Amount
    volume: Amount
    trades: int
