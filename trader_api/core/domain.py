"""Value types shared by the pure core: sides, order types, statuses, quotes."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy (the position grows), -1 for a sell."""
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class TimeInForce(StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    DAY = "day"


class OrderStatus(StrEnum):
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class RiskState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    """Only orders that shrink a position (without flipping it) are accepted."""
    HALTED = "HALTED"
    """The kill switch: no order is accepted and resting orders are canceled."""


@dataclasses.dataclass(frozen=True)
class Quote:
    """The latest top of book and last trade of one instrument."""

    symbol: str
    bid: Decimal
    ask: Decimal
    last: Decimal
    size: Decimal
    ts: datetime

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2

    def age_seconds(self, now: datetime) -> Decimal:
        return Decimal(str((now - self.ts).total_seconds()))
