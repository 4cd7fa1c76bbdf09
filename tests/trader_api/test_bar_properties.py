"""Bars from ticks (``core/bars.py``): however a bucket's ticks are split into batches, and in
whatever order they arrive, the bar folded batch by batch is the bar of all of them at once."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from sapphire.trader_api.core import bars, domain

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

ticks = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=59_999),  # ms into the minute: ties and disorder
        st.sampled_from([Decimal("99.5"), Decimal("100"), Decimal("100.25"), Decimal("101")]),
        st.sampled_from([Decimal(0), Decimal("0.5"), Decimal("1.25")]),
    ),
    min_size=1,
    max_size=30,
)


def _quotes(raw: list[tuple[int, Decimal, Decimal]]) -> list[domain.Quote]:
    return [
        domain.Quote(
            symbol="BTC-USD",
            bid=last - 1,
            ask=last + 1,
            last=last,
            size=size,
            ts=START + timedelta(milliseconds=ms),
        )
        for ms, last, size in raw
    ]


def _folded(batches: list[list[domain.Quote]], interval: bars.Interval) -> bars.Bar:
    """The bars as the engine keeps them: each batch folded into the bar held for its bucket."""
    held: dict[datetime, bars.Bar] = {}
    for batch in batches:
        for (_, start), bar in bars.aggregate(batch, interval, held=lambda _s, t: held.get(t)).items():
            held[start] = bar
    ((_, bar),) = [(start, bar) for start, bar in held.items() if start == START]
    return bar


@settings(deadline=None, max_examples=300)
@given(raw=ticks, cuts=st.lists(st.integers(min_value=1, max_value=29), max_size=5))
def test_a_minute_bar_folded_batch_by_batch_is_the_bar_of_all_its_ticks(
    raw: list[tuple[int, Decimal, Decimal]], cuts: list[int]
) -> None:
    quotes = _quotes(raw)
    edges = sorted({0, len(quotes), *(c for c in cuts if c < len(quotes))})
    batches = [quotes[a:b] for a, b in itertools.pairwise(edges)]
    assert len(batches) >= 1
    at_once = bars.aggregate(quotes, bars.Interval.MINUTE)[("BTC-USD", START)]
    folded = _folded(batches, bars.Interval.MINUTE)
    assert folded == at_once
    # what that bar is, spelled out: the earliest tick opens (first arrival on a tie), the
    # latest closes (last arrival on a tie)
    first = min(range(len(quotes)), key=lambda i: (quotes[i].ts, i))
    last = max(range(len(quotes)), key=lambda i: (quotes[i].ts, i))
    assert (folded.open, folded.close) == (quotes[first].last, quotes[last].last)
    assert (folded.high, folded.low) == (max(q.last for q in quotes), min(q.last for q in quotes))
    assert folded.volume == sum((q.size for q in quotes), Decimal(0))
    assert folded.trades == len(quotes)


@settings(deadline=None, max_examples=300)
@given(earlier=ticks, later=ticks)
def test_folding_into_a_held_bar_is_merging_with_the_batch_bar(
    earlier: list[tuple[int, Decimal, Decimal]], later: list[tuple[int, Decimal, Decimal]]
) -> None:
    key = ("BTC-USD", START)
    held = bars.aggregate(_quotes(earlier), bars.Interval.MINUTE)[key]
    batch = _quotes(later)
    partial = bars.aggregate(batch, bars.Interval.MINUTE)[key]
    folded = bars.aggregate(batch, bars.Interval.MINUTE, held=lambda _s, _t: held)[key]
    assert folded == bars.merge(held, partial)


@settings(deadline=None, max_examples=300)
@given(
    raw=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=179_999),  # three minutes: buckets of both intervals
            st.sampled_from([Decimal("99.5"), Decimal("100"), Decimal("100.25"), Decimal("101")]),
            st.sampled_from([Decimal(0), Decimal("0.5"), Decimal("1.25")]),
            st.sampled_from(["BTC-USD", "ETH-USD"]),
        ),
        min_size=1,
        max_size=40,
    ),
    earlier=ticks,
    in_order=st.booleans(),
)
def test_every_interval_at_once_is_each_interval_on_its_own(
    raw: list[tuple[int, Decimal, Decimal, str]], earlier: list[tuple[int, Decimal, Decimal]], in_order: bool
) -> None:
    """What the engine runs (the ticks read once, the minute folded from the seconds, each
    symbol's seconds as slices when its ticks arrive in time order) gives the bars of one
    ``aggregate`` per interval, with a bar already held for some buckets."""
    if in_order:  # stable: ties keep their arrival order
        raw = sorted(raw, key=lambda tick: tick[0])
    quotes = [
        domain.Quote(
            symbol=symbol,
            bid=last - 1,
            ask=last + 1,
            last=last,
            size=size,
            ts=START + timedelta(milliseconds=ms),
        )
        for ms, last, size, symbol in raw
    ]
    held = {
        (symbol, interval, start): bar
        for interval in bars.Interval
        for (symbol, start), bar in bars.aggregate(_quotes(earlier), interval).items()
    }
    expected = {}
    for interval in bars.Interval:

        def held_of(symbol: str, start: datetime, interval: bars.Interval = interval) -> bars.Bar | None:
            return held.get((symbol, interval, start))

        for (symbol, start), bar in bars.aggregate(quotes, interval, held=held_of).items():
            expected[symbol, interval, start] = bar
    every = bars.aggregate_every_interval(
        bars.TickSeries(quotes), held=lambda s, interval, t: held.get((s, interval, t))
    )
    assert every == expected
    assert {interval for _, interval, _ in every} == set(bars.Interval)


@settings(deadline=None, max_examples=300)
@given(
    raw=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=3_999),  # four seconds: ties and disorder
            st.sampled_from(["BTC-USD", "ETH-USD", "AAPL"]),
        ),
        min_size=1,
        max_size=40,
    ),
    in_order=st.booleans(),
)
def test_a_series_newest_and_seconds_are_those_of_its_ticks_one_at_a_time(
    raw: list[tuple[int, str]], in_order: bool
) -> None:
    """Each symbol's newest quote is the one that a quote replaced by every tick no earlier
    than it ends with (the last of the latest), and the seconds are every tick's."""
    if in_order:
        raw = sorted(raw, key=lambda tick: tick[0])
    quotes = [
        domain.Quote(
            symbol=symbol,
            bid=Decimal(index + 1),
            ask=Decimal(index + 2),
            last=Decimal(index + 1),
            size=Decimal(1),
            ts=START + timedelta(milliseconds=ms),
        )
        for index, (ms, symbol) in enumerate(raw)
    ]
    kept: dict[str, domain.Quote] = {}
    for quote in quotes:
        if quote.symbol not in kept or quote.ts >= kept[quote.symbol].ts:
            kept[quote.symbol] = quote
    series = bars.TickSeries(quotes)
    assert series.newest == kept
    assert {symbol: len(ticks) for symbol, ticks in series.by_symbol.items()} == {
        symbol: sum(quote.symbol == symbol for quote in quotes) for symbol in kept
    }
    assert series.seconds() == {(quote.symbol, int(quote.ts.timestamp())) for quote in quotes}
