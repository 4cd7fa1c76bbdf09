"""``sapphire feed --source simulated|replay|ccxt:<exchange>``: its own process, posting to the
API's ingest route (the ccxt source against the local Binance: test_ccxt_feed_process.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import uvicorn

from sapphire.bus.memory import MemoryBus
from sapphire.feed import runner
from sapphire.feed.settings import MarketFeedSettings
from sapphire.migrations import config as migrations
from sapphire.trader_api.app import create_app
from sapphire.trader_api.core import domain
from sapphire.trader_api.core.bars import floor_to
from sapphire.trader_api.schemas.market import TickBatch
from tests.support import processes
from tests.support import trader_api as api_process
from tests.trader_api.support import AGENT_TOKEN, READ, make_settings

RECORDED = [f"AAPL,{190 + n}.00,{190 + n}.02,{190 + n}.01,100,2024-01-02T14:30:0{n}Z" for n in range(3)]


def write_csv(path: Path) -> Path:
    path.write_text("symbol,bid,ask,last,size,ts\n" + "\n".join(RECORDED) + "\n")
    return path


async def test_the_simulated_feed_posts_ticks_stamped_by_its_own_walk(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'feed.db'}"
    migrations.upgrade(url)
    stop = asyncio.Event()
    started = datetime.now(UTC)
    async with (
        api_process.serving(create_app(make_settings(url, "memory://", "sapphire:"))) as served,
        httpx.AsyncClient(base_url=served.url, headers=READ) as client,
    ):
        settings = MarketFeedSettings(
            trader_api_url=served.url, agent_token=AGENT_TOKEN, feed_interval_seconds=0.02
        )
        running = runner.run_market_feed(settings, "simulated", stop=stop, handle_signals=False)
        feed = asyncio.create_task(running)

        async def two_bars() -> bool | None:
            bars = (await client.get("/v1/bars/AAPL", params={"interval": "1s"})).json()
            return True if len(bars) >= 2 else None

        await processes.observe(two_bars, within=20, what="two 1s bars of AAPL")
        stop.set()
        totals = await feed
        quote = (await client.get("/v1/quotes/ETH-USD")).json()
    assert totals.ticks >= 2 * 3  # every listed instrument, each step
    assert totals.rejected_batches == 0
    assert quote["stale"] is False
    assert Decimal(quote["bid"]) < Decimal(quote["ask"])
    assert started <= datetime.fromisoformat(quote["ts"]) <= datetime.now(UTC) + timedelta(seconds=1)


def run_feed_process(
    api_url: str, *args: str, token: str = api_process.AGENT_TOKEN
) -> subprocess.CompletedProcess[str]:
    env = {
        **api_process.api_environment(database_url="sqlite://", redis_url="memory://", port=0, settings={}),
        "SAPPHIRE_TRADER_API_URL": api_url,
        "SAPPHIRE_AGENT_TOKEN": token,
    }
    return subprocess.run(
        [sys.executable, "-m", "sapphire", "feed", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_replay_feed_process_keeps_the_recorded_timestamps_or_shifts_them(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'replay.db'}"
    migrations.upgrade(url)
    data = write_csv(tmp_path / "ticks.csv")
    with (
        api_process.running_trader_api(database_url=url, redis_url="memory://") as api,
        api.client() as client,
    ):
        assert client.get("/v1/quotes/AAPL").status_code == 404  # nothing before the feed ran
        done = run_feed_process(api.url, "--source", "replay", "--data", str(data), "--speed", "0")
        assert done.returncode == 0, done.stderr
        assert '"ticks": 3' in done.stdout
        quote = client.get("/v1/quotes/AAPL").json()
        assert (quote["bid"], quote["ts"]) == ("192.00", "2024-01-02T14:30:02Z")  # history, as recorded
        assert quote["stale"] is True

        done = run_feed_process(
            api.url, "--source", "replay", "--data", str(data), "--speed", "0", "--shift", "now"
        )
        assert done.returncode == 0, done.stderr
        quote = client.get("/v1/quotes/AAPL").json()
        assert quote["stale"] is False  # moved to now by one offset, keeping its spacing
        shifted = datetime.fromisoformat(quote["ts"])
        bars = client.get("/v1/bars/AAPL", params={"interval": "1s", "limit": 5}).json()
        starts = {datetime.fromisoformat(b["start"]) for b in bars}
        assert starts >= {floor_to(shifted - timedelta(seconds=2), 1), floor_to(shifted, 1)}

        refused = run_feed_process(api.url, "--source", "replay", "--data", str(data), token="not-the-token")
        assert refused.returncode == 1
        assert "refused the feed's token (401)" in refused.stderr


def test_the_source_may_come_from_the_environment_and_a_bad_option_is_named(tmp_path: Path) -> None:
    """The Deployment passes the source as SAPPHIRE_FEED_SOURCE (the --source option's variable)."""
    env = {**os.environ, "SAPPHIRE_FEED_SOURCE": "replay", "SAPPHIRE_AGENT_TOKEN": api_process.AGENT_TOKEN}
    missing = tmp_path / "missing.csv"
    done = subprocess.run(
        [sys.executable, "-m", "sapphire", "feed", "--data", str(missing)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"--data {missing}: No such file or directory" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "sapphire", "feed", "--data", str(missing), "--shift", "soon"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "feed_shift: expected nothing, `now` or a number of seconds, got 'soon'" in done.stderr


async def test_a_live_source_is_posted_as_it_arrives_and_an_outage_keeps_the_newest_ticks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``run_live_feed`` (the loop of ``--source ccxt:<exchange>``) against a trader API that is
    not up yet: the first batch is held and retried; of the ticks that arrive meanwhile the
    newest ``max_batch`` are kept, the older dropped and counted; all land once the API is up."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    migrations.upgrade(url)
    port = processes.free_port()  # nothing listens yet: the API is down
    api_url = f"http://127.0.0.1:{port}"
    now = datetime.now(UTC)

    def quote(symbol: str, bid: str) -> domain.Quote:
        price = Decimal(bid)
        return domain.Quote(symbol, price, price + Decimal("0.02"), price + Decimal("0.01"), Decimal(1), now)

    arrivals: asyncio.Queue[list[domain.Quote]] = asyncio.Queue()
    delivered = asyncio.Event()

    async def live_source() -> AsyncIterator[list[domain.Quote]]:
        while True:
            if arrivals.empty():
                delivered.set()  # everything given so far has been taken by the feed
            yield await arrivals.get()
            delivered.clear()

    poster = runner.TickPoster(api_url, token=AGENT_TOKEN)
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="sapphire.feed.runner")
    feed = asyncio.create_task(
        runner.run_live_feed(live_source(), poster, max_batch=2, stop=stop, backoff_max_seconds=0.2)
    )
    await arrivals.put([quote("BTC-USD", "100.00")])

    def retrying() -> bool | None:
        return True if any("trader API unavailable" in r.getMessage() for r in caplog.records) else None

    await processes.observe(retrying, within=10, what="the feed retrying its first batch")
    for bid in ("200.00", "201.00", "202.00"):  # while the API is away: one too many to keep
        await arrivals.put([quote("ETH-USD", bid)])
    await processes.observe(lambda: True if delivered.is_set() else None, within=10, what="ticks taken")

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(make_settings(url, "memory://", "sapphire:"), message_bus=MemoryBus()),
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="on",
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        await processes.observe(lambda: True if server.started else None, within=30, what="the API up")
        async with httpx.AsyncClient(base_url=api_url, headers=READ) as client:

            async def landed(symbol: str, bid: str) -> bool | None:
                answer = await client.get(f"/v1/quotes/{symbol}")
                ok = answer.status_code == 200 and Decimal(answer.json()["bid"]) == Decimal(bid)
                return True if ok else None

            await processes.observe(lambda: landed("BTC-USD", "100.00"), within=30, what="the held batch")
            await processes.observe(lambda: landed("ETH-USD", "202.00"), within=30, what="the newest tick")
            await arrivals.put([quote("ETH-USD", "203.00")])  # back to normal: sent as it arrives
            await processes.observe(lambda: landed("ETH-USD", "203.00"), within=30, what="a live tick")
        stop.set()
        totals = await asyncio.wait_for(feed, 15)
    finally:
        stop.set()
        await poster.aclose()
        server.should_exit = True
        await asyncio.wait_for(serving, 15)
    assert totals.dropped == 1  # 200.00, the oldest of the three that waited
    assert totals.ticks == 4  # 100.00, 201.00, 202.00, 203.00
    assert totals.retries >= 1


async def test_a_feed_stopped_while_it_waits_for_the_api_ends_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGTERM (``stop``) before the API was ever up is a stop, not a configuration error: the
    simulated feed used to go on with no instruments and fail on 'the trader API lists none'."""
    settings = MarketFeedSettings(
        trader_api_url=f"http://127.0.0.1:{processes.free_port()}",  # nothing listens: the API is down
        agent_token=AGENT_TOKEN,
        feed_backoff_max_seconds=0.2,
    )
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="sapphire.feed.runner")
    feed = asyncio.create_task(runner.run_market_feed(settings, "simulated", stop=stop, handle_signals=False))
    await processes.observe(
        lambda: True if "trader API unavailable" in caplog.text else None,
        within=10,
        what="the feed retrying the API that is down",
    )
    stop.set()
    totals = await asyncio.wait_for(feed, 10)
    assert (totals.ticks, totals.batches) == (0, 0)


def test_a_tick_batch_carries_plain_decimals_the_api_accepts() -> None:
    tiny = domain.Quote(
        "PEPE-USD", Decimal("5E-8"), Decimal("6E-8"), Decimal("5.5E-8"), Decimal("1E+6"), datetime.now(UTC)
    )
    body = json.loads(runner.encode_batch([tiny]))["ticks"][0]
    assert (body["bid"], body["ask"], body["last"], body["size"]) == (
        "0.00000005",
        "0.00000006",
        "0.000000055",
        "1000000",
    )
    TickBatch.model_validate({"ticks": [body]})  # what POST /v1/ticks reads
