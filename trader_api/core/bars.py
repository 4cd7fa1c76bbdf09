"""OHLCV bars from ticks. A bar's open and close are the ``last`` prices of its earliest and
latest ticks by timestamp, so ticks that arrive out of order still give the right bar."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from sapphire.trader_api.core import domain


class Interval(StrEnum):
    SECOND = "1s"
    MINUTE = "1m"

    @property
    def seconds(self) -> int:
        return 1 if self is Interval.SECOND else 60


@dataclasses.dataclass(frozen=True)
class Bar:
    symbol: str
    interval: Interval
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    open_ts: datetime
    close_ts: datetime
    trades: int


def floor_to(ts: datetime, seconds: int) -> datetime:
    """The start of the ``seconds``-wide bucket ``ts`` falls in (buckets aligned on the epoch)."""
    epoch = int(ts.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def bucket_start(ts: datetime, interval: Interval) -> datetime:
    return floor_to(ts, interval.seconds)


def bar_from_tick(quote: domain.Quote, interval: Interval) -> Bar:
    return Bar(
        symbol=quote.symbol,
        interval=interval,
        start=bucket_start(quote.ts, interval),
        open=quote.last,
        high=quote.last,
        low=quote.last,
        close=quote.last,
        volume=quote.size,
        open_ts=quote.ts,
        close_ts=quote.ts,
        trades=1,
    )


def merge(bar: Bar, other: Bar) -> Bar:
    """Two partial bars of the same bucket as one."""
    first = bar if bar.open_ts <= other.open_ts else other
    closing = other if other.close_ts >= bar.close_ts else bar  # on a tie the later arrival closes
    return dataclasses.replace(
        bar,
        open=first.open,
        open_ts=first.open_ts,
        close=closing.close,
        close_ts=closing.close_ts,
        high=max(bar.high, other.high),
        low=min(bar.low, other.low),
        volume=bar.volume + other.volume,
        trades=bar.trades + other.trades,
    )


def aggregate(quotes: list[domain.Quote], interval: Interval) -> dict[tuple[str, datetime], Bar]:
    """The partial bars a batch of ticks makes, by (symbol, bucket start)."""
    bars: dict[tuple[str, datetime], Bar] = {}
    for quote in quotes:
        bar = bar_from_tick(quote, interval)
        key = (quote.symbol, bar.start)
        bars[key] = merge(bars[key], bar) if key in bars else bar
    return bars


def window_start(now: datetime, interval: Interval, limit: int) -> datetime:
    return bucket_start(now, interval) - timedelta(seconds=interval.seconds * (limit - 1))
