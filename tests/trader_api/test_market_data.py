"""Ticks in; latest quotes and tick streams in Redis; 1s and 1m bars; instruments."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import redis.asyncio

from tests.trader_api.support import AGENT, READ, ManualClock, make_settings, running_client, send_ticks, tick


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def test_a_tick_sets_the_latest_quote_key_and_is_published(
    client: httpx.AsyncClient, clock: ManualClock, redis_client: redis.asyncio.Redis, redis_prefix: str
) -> None:
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(f"{redis_prefix}ticks:BTC-USD")
    await send_ticks(client, tick("BTC-USD", "100.00", "100.10", ts=clock.now, last="100.05", size="0.5"))
    expected = {
        "symbol": "BTC-USD",
        "bid": "100.00",
        "ask": "100.10",
        "last": "100.05",
        "size": "0.5",
        "ts": clock.now.isoformat(),
    }
    stored = await redis_client.get(f"{redis_prefix}quote:BTC-USD")
    assert stored is not None
    assert json.loads(stored) == expected
    message = None
    async with asyncio.timeout(5):
        while message is None:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    assert json.loads(message["data"]) == expected
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_a_batch_publishes_one_message_per_symbol_its_newest_tick_and_bars_hold_every_tick(
    client: httpx.AsyncClient, clock: ManualClock, redis_client: redis.asyncio.Redis, redis_prefix: str
) -> None:
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(f"{redis_prefix}ticks:BTC-USD", f"{redis_prefix}ticks:ETH-USD")
    earlier, newest = clock.now, clock.now + timedelta(milliseconds=400)
    await send_ticks(
        client,
        tick("BTC-USD", "100.00", "100.10", ts=earlier, last="100.05"),
        tick("ETH-USD", "10.00", "10.01", ts=newest, last="10.01"),
        tick("BTC-USD", "102.00", "102.10", ts=newest, last="102.05"),
        tick("BTC-USD", "99.00", "99.10", ts=earlier, last="99.05"),  # late: not the newest
    )
    await send_ticks(client, tick("ETH-USD", "11.00", "11.01", ts=newest, last="11.01"))  # a marker
    received: list[tuple[str, str]] = []
    async with asyncio.timeout(5):
        while not received or received[-1] != ("ETH-USD", "11.00"):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                data = json.loads(message["data"])
                received.append((data["symbol"], data["bid"]))
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    # Nothing of the first batch can follow the marker: publications go out in commit order.
    assert sorted(received[:-1]) == [("BTC-USD", "102.00"), ("ETH-USD", "10.00")]
    bar = (await client.get("/v1/bars/BTC-USD", params={"interval": "1m"}, headers=READ)).json()[-1]
    assert (bar["high"], bar["low"], bar["trades"]) == ("102.05", "99.05", 3)


async def test_the_quote_route_serves_the_latest_tick_with_a_stale_flag(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    assert (await client.get("/v1/quotes/BTC-USD", headers=READ)).status_code == 404
    await send_ticks(
        client,
        tick("BTC-USD", "100.00", "100.10", ts=clock.now),
        tick("BTC-USD", "101.00", "101.10", ts=clock.now),
    )
    quote = (await client.get("/v1/quotes/BTC-USD", headers=READ)).json()
    assert (quote["bid"], quote["ask"], quote["stale"]) == ("101.00", "101.10", False)


async def test_bars_aggregate_ticks_per_second_and_per_minute(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    clock.now = clock.now.replace(second=0, microsecond=0)
    prices = ["100.00", "103.00", "99.00", "101.00"]
    for offset, price in enumerate(prices):
        ts = clock.now.replace(second=offset // 2 * 30, microsecond=offset * 1000)
        await send_ticks(client, tick("BTC-USD", price, price, ts=ts, last=price, size="2"))
    minute = (await client.get("/v1/bars/BTC-USD", params={"interval": "1m"}, headers=READ)).json()
    assert [(b["open"], b["high"], b["low"], b["close"], b["volume"], b["trades"]) for b in minute] == [
        ("100.00", "103.00", "99.00", "101.00", "8", 4)
    ]
    seconds = (
        await client.get("/v1/bars/BTC-USD", params={"interval": "1s", "limit": 1}, headers=READ)
    ).json()
    assert len(seconds) == 1
    assert seconds[0]["close"] == "101.00"


async def test_late_ticks_do_not_become_the_close(client: httpx.AsyncClient, clock: ManualClock) -> None:
    clock.now = clock.now.replace(microsecond=0)
    late = clock.now.replace(microsecond=100)
    await send_ticks(
        client, tick("BTC-USD", "100.00", "100.00", ts=clock.now.replace(microsecond=900), last="100.00")
    )
    await send_ticks(client, tick("BTC-USD", "90.00", "90.00", ts=late, last="90.00"))
    [bar] = (await client.get("/v1/bars/BTC-USD", params={"interval": "1s"}, headers=READ)).json()
    assert (bar["open"], bar["close"], bar["low"]) == ("90.00", "100.00", "90.00")


async def test_configured_instruments_are_listed_and_unknown_symbols_refused(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    listed = (await client.get("/v1/instruments", headers=READ)).json()
    assert [i["symbol"] for i in listed] == ["AAPL", "BTC-USD", "ETH-USD"]
    assert listed[0] == {"symbol": "AAPL", "tick_size": "0.01", "lot_size": "1", "quote_currency": "USD"}
    response = await client.post(
        "/v1/ticks", json={"ticks": [tick("DOGE-USD", "1.00", "1.01", ts=clock.now)]}, headers=AGENT
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "ticks", 0, "symbol"]


async def test_all_market_mode_accepts_any_symbol_and_lists_those_seen(
    trader_database_url: str, redis_url: str, redis_prefix: str, clock: ManualClock
) -> None:
    settings = make_settings(trader_database_url, redis_url, redis_prefix, instruments=[])
    async with running_client(settings, clock) as client:
        assert (await client.get("/v1/instruments", headers=READ)).json() == []
        await send_ticks(client, tick("DOGE-USD", "0.10", "0.11", ts=clock.now))
        listed = (await client.get("/v1/instruments", headers=READ)).json()
    assert [i["symbol"] for i in listed] == ["DOGE-USD"]
