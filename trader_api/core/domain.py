"""Value types shared by the pure core: sides, order types, statuses, quotes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import msgspec

from sapphire.domain.risk import RiskState as RiskState


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
    STOP = "stop"
    """Stop-market: a market order once the stop price is touched against the position."""
    STOP_LIMIT = "stop_limit"
    """A limit order once the stop price is touched."""
    TAKE_PROFIT = "take_profit"
    """A market order once the price reaches the target in the position's favour."""
    TAKE_PROFIT_LIMIT = "take_profit_limit"
    TRAILING_STOP = "trailing_stop"
    """A stop-market whose stop follows the best price by an amount or a number of bps."""

    @property
    def is_protective(self) -> bool:
        """Triggered by the market (``core/triggers.py``) and only ever reducing a position."""
        return self not in (OrderType.MARKET, OrderType.LIMIT)

    @property
    def takes_limit_price(self) -> bool:
        """What it becomes once triggered (or at once) is a limit order."""
        return self in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT)

    @property
    def takes_stop_price(self) -> bool:
        return self in (
            OrderType.STOP,
            OrderType.STOP_LIMIT,
            OrderType.TAKE_PROFIT,
            OrderType.TAKE_PROFIT_LIMIT,
        )


class TimeInForce(StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    DAY = "day"


class OrderStatus(StrEnum):
    """An order's state. The paper venue decides at once (``new`` is a resting order); a
    live venue answers later: ``pending_new`` (sent, no answer yet) -> ``accepted`` (the
    exchange has it) -> ``partially_filled`` -> ``filled`` / ``canceled`` / ``rejected`` /
    ``expired``, with ``pending_cancel`` while a cancel awaits the exchange's answer."""

    NEW = "new"
    PENDING_NEW = "pending_new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    PENDING_CANCEL = "pending_cancel"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATUSES


OPEN_STATUSES = frozenset(
    {
        OrderStatus.NEW,
        OrderStatus.PENDING_NEW,
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PENDING_CANCEL,
    }
)
"""Statuses of orders that may still fill: the engine keeps them in its open book."""


class Quote(msgspec.Struct, frozen=True, gc=False):
    """The latest top of book and last trade of one instrument.

    A msgspec struct, not a dataclass: ingest makes one per tick (hundreds of thousands a
    second), and a frozen dataclass's ``__init__`` costs about 20 times as much. ``gc=False``:
    it holds only scalars, so the cyclic collector need never track it."""

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
