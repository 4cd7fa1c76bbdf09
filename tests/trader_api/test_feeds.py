"""Built-in feeds: the seeded simulation, CSV replay, and the in-process publisher."""

from __future__ import annotations

import asyncio
import io
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from sapphire.migrations import config as migrations
from sapphire.trader_api.core import domain
from sapphire.trader_api.feeds import replay, simulated
from tests.trader_api.support import READ, make_settings, running_client

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


def test_replay_reads_csv_and_shifts_it_to_now() -> None:
    text = "symbol,bid,ask,last,size,ts\nbtc-usd,100.00,100.10,100.05,1,2024-01-01T00:00:00Z\n"
    text += "BTC-USD,101.00,101.10,101.05,2,2024-01-01T00:00:05+00:00\n"
    quotes = list(replay.read_ticks(io.StringIO(text), shift_to=START))
    assert [(q.symbol, q.bid, q.ts) for q in quotes] == [
        ("BTC-USD", Decimal("100.00"), START),
        ("BTC-USD", Decimal("101.00"), START + timedelta(seconds=5)),
    ]


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


async def test_the_simulated_feed_runs_inside_the_api(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'feed.db'}"
    migrations.upgrade(url)
    settings = make_settings(url, "memory://", "sapphire:", feed="simulated", feed_interval_seconds=0.02)
    async with running_client(settings) as client:
        await _wait_for_bars(client)
        quote = (await client.get("/v1/quotes/ETH-USD", headers=READ)).json()
    assert quote["stale"] is False
    assert Decimal(quote["bid"]) < Decimal(quote["ask"])


async def _wait_for_bars(client: httpx.AsyncClient) -> None:
    async with asyncio.timeout(20):
        for _ in itertools.count():
            bars = (await client.get("/v1/bars/AAPL", params={"interval": "1s"}, headers=READ)).json()
            if len(bars) >= 2:
                return
            await asyncio.sleep(0.05)


async def test_the_replay_feed_runs_inside_the_api(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'replay.db'}"
    migrations.upgrade(url)
    csv = tmp_path / "ticks.csv"
    rows = [f"AAPL,{190 + n}.00,{190 + n}.02,{190 + n}.01,100,2024-01-02T14:30:0{n}Z" for n in range(3)]
    csv.write_text("symbol,bid,ask,last,size,ts\n" + "\n".join(rows) + "\n")
    settings = make_settings(
        url, "memory://", "sapphire:", feed="replay", feed_replay_path=str(csv), feed_interval_seconds=0.01
    )
    async with running_client(settings) as client, asyncio.timeout(20):
        for _ in itertools.count():
            quote = await client.get("/v1/quotes/AAPL", headers=READ)
            if quote.status_code == 200 and quote.json()["bid"] == "192.00":
                break
            await asyncio.sleep(0.05)
    assert quote.json()["stale"] is False  # replayed history is stamped with the API's clock
