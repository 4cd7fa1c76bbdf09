"""OHLCV bars from ticks. A bar's open and close are the ``last`` prices of its earliest and
latest ticks by timestamp, so ticks that arrive out of order still give the right bar."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

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
    return Bar(  # every field named (not dataclasses.replace): a merge per bar per tick batch
        symbol=bar.symbol,
        interval=bar.interval,
        start=bar.start,
        open=first.open,
        open_ts=first.open_ts,
        close=closing.close,
        close_ts=closing.close_ts,
        high=max(bar.high, other.high),
        low=min(bar.low, other.low),
        volume=bar.volume + other.volume,
        trades=bar.trades + other.trades,
    )


def aggregate(quotes: Iterable[domain.Quote], interval: Interval) -> dict[tuple[str, datetime], Bar]:
    """The partial bars a batch of ticks makes, by (symbol, bucket start). One pass of plain
    comparisons per tick: a batch holds thousands of ticks and a handful of bars."""
    seconds = interval.seconds
    runs: dict[tuple[str, int], list[Any]] = {}
    for quote in quotes:
        epoch = int(quote.ts.timestamp())
        key = (quote.symbol, epoch - epoch % seconds)
        run = runs.get(key)
        if run is None:
            # first ts, open, last ts, close, high, low, volume, trades
            runs[key] = [quote.ts, quote.last, quote.ts, quote.last, quote.last, quote.last, quote.size, 1]
            continue
        ts, last = quote.ts, quote.last
        if ts < run[0]:
            run[0], run[1] = ts, last
        if ts >= run[2]:  # on a tie the later arrival closes, as in merge()
            run[2], run[3] = ts, last
        if last > run[4]:
            run[4] = last
        if last < run[5]:
            run[5] = last
        run[6] += quote.size
        run[7] += 1
    aggregated = {}
    for (symbol, epoch), run in runs.items():
        start = datetime.fromtimestamp(epoch, UTC)
        aggregated[symbol, start] = Bar(
            symbol=symbol,
            interval=interval,
            start=start,
            open=run[1],
            high=run[4],
            low=run[5],
            close=run[3],
            volume=run[6],
            open_ts=run[0],
            close_ts=run[2],
            trades=run[7],
        )
    return aggregated


def window_start(now: datetime, interval: Interval, limit: int) -> datetime:
    return bucket_start(now, interval) - timedelta(seconds=interval.seconds * (limit - 1))
