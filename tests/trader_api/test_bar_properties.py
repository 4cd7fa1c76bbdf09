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
