"""``sapphire feed --source ccxt:binance``: the real feed process streams the local Binance's
ticker websocket (``tests/support/fake_binance.py``, through the real ccxt.pro client) into a
real ``sapphire api`` process, with the exchange's timestamps; it reconnects when the exchange
drops the stream, holds and retries its batch while the API is down, and exits 0 on SIGTERM.

The fake exchange lives in the test's event loop, so every blocking step (starting or
stopping a process) runs in a thread while the loop keeps serving the exchange."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from sapphire.migrations import config as migrations
from sapphire.trader_api.services import exchange
from sapphire.trader_api.settings import CcxtMarketDataSettings
from tests.support import trader_api as api_process
from tests.support.fake_binance import FakeBinance, running_fake_binance
from tests.support.processes import observe
from tests.trader_api.support import order

WITHIN = 30.0
FIRST_START = 90.0
"""The feed's first fact may wait for Python to compile ccxt (seconds on a cold bytecode cache)."""
AGENT = {"Authorization": f"Bearer {api_process.AGENT_TOKEN}"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with running_fake_binance() as exchange_server:
        yield exchange_server


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    migrations.upgrade(url)
    return url


async def quote_at(client: httpx.AsyncClient, symbol: str, bid: str) -> dict[str, Any] | None:
    response = await client.get(f"/v1/quotes/{symbol}")
    if response.status_code != 200:
        return None
    quote: dict[str, Any] = response.json()
    return quote if Decimal(quote["bid"]) == Decimal(bid) else None


def exchange_time(fake: FakeBinance, market: str) -> datetime:
    return datetime.fromtimestamp(fake.ticker_times[market] / 1000, UTC)


def stream_connections(fake: FakeBinance) -> int:
    return sum(1 for _, path in fake.requests if path.startswith("/ws"))


async def market(client: httpx.AsyncClient, client_order_id: str, side: str) -> dict[str, Any]:
    response = await client.post("/v1/orders", json=order(client_order_id, "BTC-USD", side, "0.01"))
    assert response.status_code == 201, response.text
    placed: dict[str, Any] = response.json()
    assert placed["status"] == "filled"
    return placed


async def test_the_feed_process_streams_the_exchange_into_the_api_through_drops_and_outages(
    fake: FakeBinance, database_url: str
) -> None:
    api = api_process.TraderApiProcess(
        database_url=database_url, redis_url="memory://", settings={"slippage_bps": "0"}
    )
    await asyncio.to_thread(api.start)
    feed: api_process.MarketFeedProcess | None = None
    try:
        async with httpx.AsyncClient(base_url=api.url, headers=AGENT, timeout=10) as client:
            assert (await client.get("/v1/quotes/BTC-USD")).status_code == 404  # no data before the feed
            feed = api_process.spawn_market_feed(
                api.url,
                "--source",
                "ccxt:binance",
                ccxt_api_origin=fake.url,
                feed_backoff_max_seconds="1",
                log_level="INFO",
            )  # symbols: the API's instruments (BTC-USD, ETH-USD; AAPL is not on Binance, skipped)

            first = await observe(
                lambda: quote_at(client, "BTC-USD", "64999.99"), within=FIRST_START, what="BTC/USDT's ticker"
            )
            assert Decimal(first["ask"]) == Decimal("65000.01")
            assert datetime.fromisoformat(first["ts"]) == exchange_time(fake, "BTCUSDT")  # not restamped
            assert first["stale"] is False
            eth = await observe(
                lambda: quote_at(client, "ETH-USD", "3199.99"), within=WITHIN, what="ETH/USDT's ticker"
            )
            assert datetime.fromisoformat(eth["ts"]) == exchange_time(fake, "ETHUSDT")

            await fake.set_price("BTCUSDT", Decimal("65500.00"), Decimal("65500.02"))
            moved = await observe(
                lambda: quote_at(client, "BTC-USD", "65500.00"), within=WITHIN, what="the next ticker"
            )
            assert datetime.fromisoformat(moved["ts"]) == exchange_time(fake, "BTCUSDT")
            bought = await market(client, "feed-live-buy", "buy")
            assert Decimal(bought["average_price"]) == Decimal("65500.02")  # paper, at the exchange's ask

            connections = stream_connections(fake)
            await fake.drop_websockets()  # a network blip: ccxt.pro reconnects, the feed goes on
            await fake.set_price("BTCUSDT", Decimal("65100.00"), Decimal("65100.02"))
            await observe(
                lambda: quote_at(client, "BTC-USD", "65100.00"), within=WITHIN, what="a ticker after the drop"
            )
            assert stream_connections(fake) > connections
            sold = await market(client, "feed-live-sell", "sell")
            assert Decimal(sold["average_price"]) == Decimal("65100.00")  # at the exchange's bid
            portfolio = (await client.get("/v1/portfolio")).json()
            fills = (await client.get("/v1/fills")).json()
            assert Decimal(portfolio["realized_pnl"]) == (
                Decimal("65100.00") - Decimal("65500.02")
            ) * Decimal("0.01")

        await asyncio.to_thread(api.stop)  # the API goes away; the exchange keeps moving
        await fake.set_price("BTCUSDT", Decimal("65200.00"), Decimal("65200.02"))

        def retried_twice() -> bool | None:
            assert feed is not None
            return True if feed.output().count("trader API unavailable, retrying in") >= 2 else None

        await observe(retried_twice, within=WITHIN, what="the feed retrying the API with backoff")
        assert feed.process.poll() is None  # still running
        await asyncio.to_thread(api.start)
        async with httpx.AsyncClient(base_url=api.url, headers=AGENT, timeout=10) as client:
            held = await observe(
                lambda: quote_at(client, "BTC-USD", "65200.00"),
                within=WITHIN,
                what="the batch held through the outage",
            )
            assert datetime.fromisoformat(held["ts"]) == exchange_time(fake, "BTCUSDT")

        feed.process.terminate()
        returncode = await asyncio.to_thread(feed.process.wait, 30)
        assert returncode == 0, feed.output()[-3000:]
        totals = json.loads(feed.output().strip().splitlines()[-1])
        assert totals["ticks"] >= 5  # two opening tickers, three moves (more if ccxt resubscribed)
        assert totals["retries"] >= 2
        assert totals["rejected_batches"] == 0
        print("\npaper on live prices (sapphire feed --source ccxt:binance, the local Binance):")
        for placed in (bought, sold):
            side, quantity, price = placed["side"], placed["quantity"], placed["average_price"]
            print(f"  order {side:<4} {quantity} BTC-USD {placed['status']} at {price}")
        for fill in reversed(fills):
            side, pnl = fill["side"], fill["realized_pnl"]
            print(f"  fill  {side:<4} {fill['quantity']} @ {fill['price']} fee {fill['fee']} pnl {pnl}")
        pnl, fees, equity = portfolio["realized_pnl"], portfolio["fees"], portfolio["equity"]
        print(f"  realized PnL {pnl}, fees {fees}, equity {equity}")
        print(f"  feed totals after SIGTERM: {totals}")
    except BaseException:
        if feed is not None:
            print(f"sapphire feed's log ({feed.log}):\n{feed.output()[-4000:]}")
        raise
    finally:
        if feed is not None and feed.process.poll() is None:
            feed.process.kill()
            await asyncio.to_thread(feed.process.wait, 10)
        await asyncio.to_thread(api.stop)


def run_feed(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = api_process.feed_environment("http://127.0.0.1:9", settings)  # no API: these never post
    return subprocess.run(
        [sys.executable, "-m", "sapphire", "feed", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_an_unknown_exchange_or_one_without_the_symbols_is_a_clear_error(fake: FakeBinance) -> None:
    done = await asyncio.to_thread(run_feed, "--source", "ccxt:binanse")
    assert done.returncode == 2
    assert "--source: ccxt has no exchange 'binanse'" in done.stderr
    done = await asyncio.to_thread(run_feed, feed_source="ccxt:")  # the Deployment's variable
    assert done.returncode == 2
    assert "--source: ccxt has no exchange ''" in done.stderr
    done = await asyncio.to_thread(run_feed, "--source", "binance")
    assert done.returncode == 2
    assert "--source: expected simulated, replay, news or ccxt:<exchange>, got 'binance'" in done.stderr

    done = await asyncio.to_thread(
        run_feed, "--source", "ccxt:binance", ccxt_api_origin=fake.url, feed_symbols='["AAPL"]'
    )
    assert done.returncode == 1
    assert "--source: binance lists none of the configured instruments" in done.stderr
    assert ("GET", "/api/v3/exchangeInfo") in fake.requests  # it asked the exchange, which said no


async def test_an_exchange_without_websockets_gets_a_rest_client_to_poll() -> None:
    """ccxt.pro has no bitflyer: the feed polls its REST tickers instead of refusing it."""
    clients = [
        exchange.build_market_data(
            CcxtMarketDataSettings(), exchange_id, setting="--source", timeout_seconds=5
        )
        for exchange_id in ("bitflyer", "binance")
    ]
    try:
        assert [client.id for client in clients] == ["bitflyer", "binance"]
        assert [bool(client.has.get("watchTicker")) for client in clients] == [False, True]
    finally:
        for client in clients:
            await client.close()
