"""Built-in feeds: the seeded simulation, CSV replay, and the in-process publisher."""

from __future__ import annotations

import io
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from sapphire.trader_api.core import domain
from sapphire.trader_api.feeds import replay, simulated

START = datetime(2026, 3, 2, tzinfo=UTC)
BTC = simulated.SimulatedInstrument(
    "BTC-USD", Decimal("65000"), Decimal("0.01"), Decimal("0.0001"), Decimal("0.5")
)
AAPL = simulated.SimulatedInstrument("AAPL", Decimal("190"), Decimal("0.01"), Decimal("1"), Decimal("100"))


def run(seed: int, steps: int = 2000) -> list[list[domain.Quote]]:
    feed = simulated.simulate([BTC, AAPL], seed=seed, start=START, step=timedelta(seconds=1))
    return list(itertools.islice(feed, steps))


def test_the_same_seed_gives_the_same_ticks_and_another_seed_others() -> None:
    assert run(7, 300) == run(7, 300)
    assert run(7, 300) != run(8, 300)


def test_simulated_books_are_sane_and_on_the_tick_and_lot() -> None:
    for batch in run(11):
        for quote in batch:
            instrument = BTC if quote.symbol == "BTC-USD" else AAPL
            assert Decimal(0) < quote.bid < quote.ask
            assert quote.last in (quote.bid, quote.ask)
            assert quote.bid % instrument.tick_size == 0
            assert quote.ask % instrument.tick_size == 0
            assert quote.size >= instrument.lot_size
            assert quote.size % instrument.lot_size == 0


def test_spreads_are_realistic_and_widen_with_volatility() -> None:
    spreads_bps = sorted(
        (q.ask - q.bid) / ((q.ask + q.bid) / 2) * 10_000
        for batch in run(3, 5000)
        for q in batch
        if q.symbol == "BTC-USD"
    )
    assert Decimal("0.5") < spreads_bps[len(spreads_bps) // 2] < Decimal(10)  # a liquid market: a few bps
    assert spreads_bps[-1] > 3 * spreads_bps[0]  # stressed regimes are visibly wider


def test_replay_keeps_the_recorded_timestamps_or_shifts_them_by_one_offset() -> None:
    text = "symbol,bid,ask,last,size,ts\nbtc-usd,100.00,100.10,100.05,1,2024-01-01T00:00:00Z\n"
    text += "BTC-USD,101.00,101.10,101.05,2,2024-01-01T00:00:05+00:00\n"
    recorded = datetime(2024, 1, 1, tzinfo=UTC)
    kept = list(replay.read_ticks(io.StringIO(text)))
    assert [(q.symbol, q.bid, q.ts) for q in kept] == [
        ("BTC-USD", Decimal("100.00"), recorded),
        ("BTC-USD", Decimal("101.00"), recorded + timedelta(seconds=5)),
    ]
    shifted = list(replay.read_ticks(io.StringIO(text), shift=timedelta(hours=-1)))
    assert [q.ts for q in shifted] == [recorded - timedelta(hours=1), recorded + timedelta(seconds=5 - 3600)]
    to_start = list(replay.shift_to(replay.read_ticks(io.StringIO(text)), START))
    assert [q.ts for q in to_start] == [START, START + timedelta(seconds=5)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("symbol,bid,ask\n", "header: missing column(s) last, size, ts"),
        ("symbol,bid,ask,last,size,ts\nA,1,2,x,1,2024-01-01T00:00:00Z\n", "line 2, last: not a decimal"),
        ("symbol,bid,ask,last,size,ts\nA,1,2,1,1,yesterday\n", "line 2, ts:"),
    ],
)
def test_replay_errors_name_the_line_and_column(text: str, message: str) -> None:
    with pytest.raises(replay.ReplayError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(replay.read_ticks(io.StringIO(text)))
