"""OHLCV bars from ticks. A bar's open and close are the ``last`` prices of its earliest and
latest ticks by timestamp, so ticks that arrive out of order still give the right bar."""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import operator
from collections.abc import Callable, Sequence
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
    return _merged(
        bar,
        other.open_ts,
        other.open,
        other.close_ts,
        other.close,
        other.high,
        other.low,
        other.volume,
        other.trades,
    )


def _merged(
    bar: Bar,
    open_ts: datetime,
    open_: Decimal,
    close_ts: datetime,
    close: Decimal,
    high: Decimal,
    low: Decimal,
    volume: Decimal,
    trades: int,
) -> Bar:
    """``bar`` merged with a later partial bar of its bucket, given by its figures (in the
    order of :func:`aggregate`'s runs)."""
    first_ts, first = (bar.open_ts, bar.open) if bar.open_ts <= open_ts else (open_ts, open_)
    # On a tie the later arrival closes.
    closing_ts, closing = (close_ts, close) if close_ts >= bar.close_ts else (bar.close_ts, bar.close)
    return Bar(  # every field named (not dataclasses.replace): a merge per bar per tick batch
        symbol=bar.symbol,
        interval=bar.interval,
        start=bar.start,
        open=first,
        open_ts=first_ts,
        close=closing,
        close_ts=closing_ts,
        high=max(bar.high, high),
        low=min(bar.low, low),
        volume=bar.volume + volume,
        trades=bar.trades + trades,
    )


Run = list[Any]
"""A bucket's figures as :func:`_runs` folds them: first ts, open, last ts, close, high, low,
volume, trades."""


def _runs(quotes: Sequence[domain.Quote], epochs: Sequence[int], seconds: int) -> dict[tuple[str, int], Run]:
    """One pass of plain comparisons per tick: the figures of each (symbol, bucket epoch)."""
    runs: dict[tuple[str, int], Run] = {}
    for quote, epoch in zip(quotes, epochs, strict=True):
        key = (quote.symbol, epoch - epoch % seconds)
        run = runs.get(key)
        if run is None:
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
    return runs


_TS_OF = operator.attrgetter("ts")
_LAST_OF = operator.attrgetter("last")
_SIZE_OF = operator.attrgetter("size")


class TickSeries:
    """A batch of ticks by symbol, each symbol's in arrival order, read once for everything
    the engine takes from a batch: each symbol's newest quote and tick count, the seconds the
    ticks fall in, and their bars.

    Why: a batch is thousands of ticks of a few symbols, and a loop of ours costs about a
    microsecond a tick. A symbol's ticks nearly always arrive in time order, and then each
    second's are one slice of its list, found by bisection: their open is the slice's first
    tick, their close its last, and high, low and volume are ``max``, ``min`` and ``sum``
    over the slice, each a loop in C. A symbol whose ticks go back in time takes the plain
    loop, :func:`_runs`, which is also the rule the slices must agree with (the property
    tests check both)."""

    def __init__(self, quotes: Sequence[domain.Quote]) -> None:
        by_symbol: dict[str, list[domain.Quote]] = {}
        for quote in quotes:
            same = by_symbol.get(quote.symbol)
            if same is None:
                by_symbol[quote.symbol] = [quote]
            else:
                same.append(quote)
        self.by_symbol = by_symbol
        self.newest = {
            symbol: ticks[0] if len(ticks) == 1 else max(reversed(ticks), key=_TS_OF)
            for symbol, ticks in by_symbol.items()
        }
        """Each symbol's tick with the latest timestamp; of several, the last to arrive."""

    @functools.cached_property
    def _seconds(self) -> dict[str, list[tuple[int, int, int]] | None]:
        """Each in-order symbol's (epoch second, start, end) slices; None for one out of
        order. Only for bars (a backtest's engine keeps none, and needs only ``newest``)."""
        return {symbol: _seconds_in_order(ticks) for symbol, ticks in self.by_symbol.items()}

    def seconds(self) -> set[tuple[str, int]]:
        """(symbol, epoch second) of every tick."""
        seen: set[tuple[str, int]] = set()
        for symbol, slices in self._seconds.items():
            if slices is None:
                seen.update((symbol, _epoch(quote.ts)) for quote in self.by_symbol[symbol])
            else:
                seen.update((symbol, epoch) for epoch, _, _ in slices)
        return seen

    def runs(self) -> dict[tuple[str, int], Run]:
        """:func:`_runs` of the batch for 1-second buckets."""
        runs: dict[tuple[str, int], Run] = {}
        for symbol, slices in self._seconds.items():
            ticks = self.by_symbol[symbol]
            if slices is None:
                runs.update(_runs(ticks, [_epoch(quote.ts) for quote in ticks], 1))
                continue
            for epoch, start, end in slices:
                second = ticks[start:end]
                first, last = second[0], second[-1]
                prices = list(map(_LAST_OF, second))
                # Summed from the first tick's size on, in arrival order: the additions _runs makes.
                volume = sum(map(_SIZE_OF, itertools.islice(second, 1, None)), first.size)
                high, low, count = max(prices), min(prices), len(second)
                runs[symbol, epoch] = [first.ts, first.last, last.ts, last.last, high, low, volume, count]
        return runs


def _epoch(ts: datetime) -> int:
    """Whole seconds since the epoch. Exact: a float holds a microsecond timestamp to within
    a quarter of a microsecond up to 2100, so ``int`` never rounds one up into the next second."""
    return int(ts.timestamp())


def _seconds_in_order(ticks: list[domain.Quote]) -> list[tuple[int, int, int]] | None:
    """(epoch second, start, end) of each second's slice of ``ticks``; None unless their
    timestamps never go back."""
    stamps = list(map(_TS_OF, ticks))
    if not all(map(operator.le, stamps, itertools.islice(stamps, 1, None))):
        return None
    slices = []
    start, count = 0, len(stamps)
    while start < count:
        epoch = _epoch(stamps[start])
        end = bisect.bisect_left(stamps, datetime.fromtimestamp(epoch + 1, UTC), start + 1)
        slices.append((epoch, start, end))
        start = end
    return slices


def _coarser(runs: dict[tuple[str, int], Run], seconds: int) -> dict[tuple[str, int], Run]:
    """The runs of a coarser interval, folded from a finer one's (a handful, not the ticks).
    Exact: buckets of both are aligned on the epoch, so each coarse bucket is a union of fine
    ones, and two fine runs never share a timestamp (ties were settled inside each run)."""
    coarse: dict[tuple[str, int], Run] = {}
    for (symbol, epoch), run in runs.items():
        key = (symbol, epoch - epoch % seconds)
        into = coarse.get(key)
        if into is None:
            coarse[key] = list(run)
            continue
        if run[0] < into[0]:
            into[0], into[1] = run[0], run[1]
        if run[2] > into[2]:
            into[2], into[3] = run[2], run[3]
        if run[4] > into[4]:
            into[4] = run[4]
        if run[5] < into[5]:
            into[5] = run[5]
        into[6] += run[6]
        into[7] += run[7]
    return coarse


def _bars_of(
    runs: dict[tuple[str, int], Run], interval: Interval, held: Callable[[str, datetime], Bar | None] | None
) -> dict[tuple[str, datetime], Bar]:
    aggregated = {}
    for (symbol, epoch), run in runs.items():
        start = datetime.fromtimestamp(epoch, UTC)
        earlier = None if held is None else held(symbol, start)
        if earlier is not None:
            aggregated[symbol, start] = _merged(earlier, *run)
            continue
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


def aggregate(
    quotes: Sequence[domain.Quote],
    interval: Interval,
    *,
    held: Callable[[str, datetime], Bar | None] | None = None,
) -> dict[tuple[str, datetime], Bar]:
    """The partial bars a batch of ticks makes for one interval, by (symbol, bucket start).
    ``held``: the bar already held for a bucket, if any; each bar returned is then
    ``merge(held, partial)``. The engine folds every interval at once
    (:func:`aggregate_every_interval`); this is the one-interval rule it must agree with."""
    epochs = [_epoch(quote.ts) for quote in quotes]
    return _bars_of(_runs(quotes, epochs, interval.seconds), interval, held)


def aggregate_every_interval(
    series: TickSeries, *, held: Callable[[str, Interval, datetime], Bar | None]
) -> dict[tuple[str, Interval, datetime], Bar]:
    """:func:`aggregate` for every interval at once, by (symbol, interval, bucket start): the
    ticks are read once, for the finest interval (1 second, :meth:`TickSeries.runs`), and
    each coarser one is folded from its runs. The same bars as one :func:`aggregate` per
    interval."""
    intervals = sorted(Interval, key=lambda interval: interval.seconds)  # SECOND first
    runs = series.runs()
    every: dict[tuple[str, Interval, datetime], Bar] = {}
    for interval in intervals:
        if interval is not intervals[0]:
            runs = _coarser(runs, interval.seconds)

        def held_for(symbol: str, start: datetime, interval: Interval = interval) -> Bar | None:
            return held(symbol, interval, start)

        for (symbol, start), bar in _bars_of(runs, interval, held_for).items():
            every[symbol, interval, start] = bar
    return every


def window_start(now: datetime, interval: Interval, limit: int) -> datetime:
    return bucket_start(now, interval) - timedelta(seconds=interval.seconds * (limit - 1))
