"""Signals (persisted and published), agent heartbeats and statistics, headlines."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import redis.asyncio

from tests.trader_api.support import (
    AGENT,
    READ,
    ManualClock,
    make_settings,
    order,
    running_client,
    send_ticks,
    tick,
)


def signal(agent: str = "mom-1", symbol: str = "BTC-USD", **fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "agent": agent,
        "role": "momentum",
        "symbol": symbol,
        "direction": "long",
        "strength": "0.6",
        "confidence": "0.8",
        "horizon_seconds": 300,
        "rationale": "20-tick breakout",
    }
    body.update(fields)
    return body


async def test_a_signal_is_stored_and_published(
    client: httpx.AsyncClient, redis_url: str, redis_prefix: str
) -> None:
    listener = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    pubsub = listener.pubsub()
    await pubsub.subscribe(f"{redis_prefix}signals")
    response = await client.post("/v1/signals", json=signal(model="gemini-2.0-flash"), headers=AGENT)
    assert response.status_code == 201, response.text
    stored = response.json()
    assert stored["id"]
    assert stored["created_at"]
    assert (stored["strength"], stored["model"]) == ("0.6", "gemini-2.0-flash")
    message = None
    async with asyncio.timeout(5):
        while message is None:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    assert json.loads(message["data"]) == stored
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await listener.aclose()
    listed = (await client.get("/v1/signals", headers=READ)).json()
    assert listed == [stored]


async def test_concurrent_signals_commit_together_keep_the_analysts_time_and_are_published_after(
    client: httpx.AsyncClient, clock: ManualClock, redis_url: str, redis_prefix: str
) -> None:
    listener = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    pubsub = listener.pubsub()
    await pubsub.subscribe(f"{redis_prefix}signals")
    formed = clock.now - timedelta(seconds=3)
    bodies = [signal(f"a{n}", ts=formed.isoformat()) for n in range(20)]
    responses = await asyncio.gather(*(client.post("/v1/signals", json=b, headers=AGENT) for b in bodies))
    assert [r.status_code for r in responses] == [201] * 20
    stored = [r.json() for r in responses]
    assert {datetime.fromisoformat(row["ts"]) for row in stored} == {formed}  # the analyst's own time
    assert {datetime.fromisoformat(row["created_at"]) for row in stored} == {clock.now}
    published: list[dict[str, str]] = []
    async with asyncio.timeout(5):
        while len(published) < 20:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                published.append(json.loads(message["data"]))
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await listener.aclose()
    assert sorted(published, key=lambda row: row["agent"]) == sorted(
        stored, key=lambda row: str(row["agent"])
    )
    listed = (await client.get("/v1/signals", params={"limit": 100}, headers=READ)).json()
    assert len(listed) == 20


async def test_a_signal_from_the_future_is_refused_naming_ts(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    ahead = (clock.now + timedelta(minutes=5)).isoformat()
    refused = await client.post("/v1/signals", json=signal(ts=ahead), headers=AGENT)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", "ts"]
    assert (await client.get("/v1/signals", headers=READ)).json() == []


async def test_signals_are_filtered_by_agent_symbol_and_time(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await client.post("/v1/signals", json=signal("a1", "BTC-USD"), headers=AGENT)
    clock.advance(60)
    cutoff = clock.now
    await client.post("/v1/signals", json=signal("a1", "ETH-USD"), headers=AGENT)
    await client.post("/v1/signals", json=signal("a2", "BTC-USD"), headers=AGENT)

    async def symbols(**params: str) -> list[tuple[str, str]]:
        rows = (await client.get("/v1/signals", params=params, headers=READ)).json()
        return [(row["agent"], row["symbol"]) for row in rows]

    assert await symbols(agent="a1") == [("a1", "ETH-USD"), ("a1", "BTC-USD")]
    assert await symbols(symbol="BTC-USD") == [("a2", "BTC-USD"), ("a1", "BTC-USD")]
    assert sorted(await symbols(since=cutoff.isoformat())) == [("a1", "ETH-USD"), ("a2", "BTC-USD")]
    assert len(await symbols(limit="1")) == 1


async def test_a_signal_under_another_role_than_the_agents_registered_one_is_refused(
    client: httpx.AsyncClient,
) -> None:
    heartbeat = {"role": "momentum", "symbols": ["BTC-USD"]}
    assert (await client.post("/v1/agents/mom-1/heartbeat", json=heartbeat, headers=AGENT)).status_code == 200
    refused = await client.post("/v1/signals", json=signal(role="volatility"), headers=AGENT)
    assert refused.status_code == 422, refused.text
    (detail,) = refused.json()["detail"]
    assert detail["loc"] == ["body", "role"]
    assert "registered with role 'momentum'" in detail["msg"]
    assert (await client.get("/v1/signals", headers=READ)).json() == [], "nothing was stored"
    accepted = await client.post("/v1/signals", json=signal(role="momentum"), headers=AGENT)
    assert accepted.status_code == 201, accepted.text


async def test_heartbeats_register_agents(client: httpx.AsyncClient, clock: ManualClock) -> None:
    first = await client.post(
        "/v1/agents/mom-1/heartbeat", json={"role": "momentum", "symbols": ["BTC-USD"]}, headers=AGENT
    )
    assert first.status_code == 200
    clock.advance(30)
    await client.post("/v1/agents/mom-1/heartbeat", json={"role": "momentum", "symbols": []}, headers=AGENT)
    [agent] = (await client.get("/v1/agents", headers=READ)).json()
    assert agent["symbols"] == []
    assert agent["registered_at"] == first.json()["registered_at"]
    assert agent["alive"] is True
    clock.advance(120)
    assert (await client.get("/v1/agents", headers=READ)).json()[0]["alive"] is False


async def test_an_agent_is_stale_after_the_configured_silence(
    trader_database_url: str, redis_url: str, redis_prefix: str, clock: ManualClock
) -> None:
    settings = make_settings(trader_database_url, redis_url, redis_prefix, agent_stale_after_seconds="5")
    async with running_client(settings, clock) as client:
        beat = await client.post("/v1/agents/mom-1/heartbeat", json={"role": "momentum"}, headers=AGENT)
        assert beat.json()["alive"] is True
        clock.advance(5)
        assert (await client.get("/v1/agents", headers=READ)).json()[0]["alive"] is True
        clock.advance(0.5)
        assert (await client.get("/v1/agents", headers=READ)).json()[0]["alive"] is False


async def test_agent_stats_count_signals_orders_and_attribute_pnl(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await send_ticks(client, tick("BTC-USD", "100.00", "100.00", ts=clock.now))
    for _ in range(3):
        await client.post("/v1/signals", json=signal("exec-1"), headers=AGENT)
    clock.advance(2 * 3600)
    await client.post("/v1/signals", json=signal("exec-1"), headers=AGENT)
    await send_ticks(client, tick("BTC-USD", "100.00", "100.00", ts=clock.now))
    await client.post("/v1/orders", json=order("e1", quantity="2", agent="exec-1"), headers=AGENT)
    await send_ticks(client, tick("BTC-USD", "105.00", "105.00", ts=clock.now))
    await client.post(
        "/v1/orders", json=order("e2", side="sell", quantity="2", agent="exec-1"), headers=AGENT
    )
    await client.post("/v1/orders", json=order("other", quantity="1", agent="someone-else"), headers=AGENT)
    stats = (await client.get("/v1/agents/exec-1/stats", headers=READ)).json()
    assert stats["signal_count"] == 4
    assert stats["signals_last_hour"] == 1
    assert stats["last_signal_at"] is not None
    assert (stats["orders"], stats["filled_orders"], stats["fills"]) == (2, 2, 2)
    assert Decimal(stats["realized_pnl"]) == 10
    assert Decimal(stats["unrealized_pnl"]) == 0
    assert Decimal(stats["gross_exposure"]) == 0
    assert stats["orders_last_hour"] == 2
    other = (await client.get("/v1/agents/someone-else/stats", headers=READ)).json()
    assert Decimal(other["gross_exposure"]) == 105
    assert Decimal(other["unrealized_pnl"]) == 0
    unknown = (await client.get("/v1/agents/nobody/stats", headers=READ)).json()
    assert (unknown["signal_count"], unknown["orders"], unknown["last_signal_at"]) == (0, 0, None)


async def test_headlines_are_stored_and_queried_by_symbol_and_time(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    early, late = clock.now.isoformat(), (clock.now.replace(hour=15)).isoformat()
    for symbol, ts in (("BTC-USD", early), (None, late), ("BTC-USD", late)):
        body = {"symbol": symbol, "text": f"news at {ts}", "source": "wire", "ts": ts}
        assert (await client.post("/v1/headlines", json=body, headers=AGENT)).status_code == 201
    btc = (await client.get("/v1/headlines", params={"symbol": "BTC-USD"}, headers=READ)).json()
    assert [h["ts"][:13] for h in btc] == ["2026-03-02T15", "2026-03-02T14"]
    recent = (await client.get("/v1/headlines", params={"since": late}, headers=READ)).json()
    assert len(recent) == 2
