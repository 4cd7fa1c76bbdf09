"""Signals (persisted and published), agent heartbeats and statistics, headlines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import psycopg
import redis.asyncio
from psycopg import sql

from sapphire.trader_api.storage import batches
from tests.trader_api.support import (
    AGENT,
    READ,
    ManualClock,
    make_settings,
    order,
    running_client,
    send_ticks,
    signal,
    tick,
)

T = TypeVar("T")


async def published_signals(
    redis_url: str, channel: str, count: int, during: Awaitable[T]
) -> tuple[T, list[Any]]:
    """What ``during`` gives, and the first ``count`` messages on ``channel`` meanwhile (decoded)."""
    listener = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    pubsub = listener.pubsub()
    await pubsub.subscribe(channel)
    try:
        result = await during
        published: list[Any] = []
        async with asyncio.timeout(5):
            while len(published) < count:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    published.append(json.loads(message["data"]))
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await listener.aclose()
    return result, published


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


async def test_one_batch_stores_the_signals_whose_role_matches_and_refuses_the_others(
    client: httpx.AsyncClient, redis_url: str, redis_prefix: str
) -> None:
    for name, role in (("mom-1", "momentum"), ("vol-1", "volatility")):
        beat = await client.post(f"/v1/agents/{name}/heartbeat", json={"role": role}, headers=AGENT)
        assert beat.status_code == 200
    bodies = [
        signal("mom-1"),  # registered as momentum: stored
        signal("vol-1"),  # registered as volatility, signalling as momentum: refused
        signal("new-1"),  # not registered: stored
        signal("vol-1", role="volatility"),
    ]
    posts = asyncio.gather(*(client.post("/v1/signals", json=b, headers=AGENT) for b in bodies))
    responses, published = await published_signals(redis_url, f"{redis_prefix}signals", 3, posts)
    assert [r.status_code for r in responses] == [201, 422, 201, 201], [r.text for r in responses]
    assert responses[1].json()["detail"][0]["loc"] == ["body", "role"]
    stored = sorted((r.json() for r in responses if r.status_code == 201), key=lambda row: str(row["agent"]))
    assert sorted(published, key=lambda row: str(row["agent"])) == stored
    listed = (await client.get("/v1/signals", headers=READ)).json()
    assert sorted(listed, key=lambda row: str(row["agent"])) == stored


async def test_a_lost_connection_is_replaced_and_a_batch_that_cannot_commit_is_refused_whole(
    client: httpx.AsyncClient, trader_database_url: str, redis_url: str, redis_prefix: str
) -> None:
    cut_all = (
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %(name)s) AS terminated"
    )
    url = batches.psycopg_url(trader_database_url)
    name = str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])
    doors = "ALTER DATABASE {} ALLOW_CONNECTIONS {}"

    async def posts() -> list[httpx.Response]:
        answers = [await client.post("/v1/signals", json=signal("before"), headers=AGENT)]
        # From the server's maintenance database: a database cannot shut its own doors.
        with psycopg.connect(url, autocommit=True, dbname="postgres") as admin:
            # Every connection to the test's database is cut, the signal journal's among them.
            cut = admin.execute(cut_all, {"name": name}).fetchone()
            assert cut is not None
            assert cut[0] >= 1
            answers.append(await client.post("/v1/signals", json=signal("replaced"), headers=AGENT))
            # Cut again, and no new connection let in: the batch cannot commit anywhere.
            admin.execute(sql.SQL(doors).format(sql.Identifier(name), sql.SQL("false")))
            try:
                admin.execute(cut_all, {"name": name})
                answers.append(await client.post("/v1/signals", json=signal("lost"), headers=AGENT))
            finally:
                admin.execute(sql.SQL(doors).format(sql.Identifier(name), sql.SQL("true")))
        answers.append(await client.post("/v1/signals", json=signal("after"), headers=AGENT))
        return answers

    answers, published = await published_signals(redis_url, f"{redis_prefix}signals", 3, posts())
    assert [a.status_code for a in answers] == [201, 201, 503, 201], [a.text for a in answers]
    assert "could not be stored" in answers[2].json()["detail"]
    assert [row["agent"] for row in published] == ["before", "replaced", "after"]
    listed = (await client.get("/v1/signals", headers=READ)).json()
    assert sorted(row["agent"] for row in listed) == ["after", "before", "replaced"]
