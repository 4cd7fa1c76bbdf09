"""Redis goes away mid-test: what committed keeps its events until Redis is back, new
writes answer 503 with nothing half-written, /readyz says why, and the same API process
recovers by itself once Redis returns."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import redis.asyncio

from tests.support import processes, services
from tests.trader_api.support import AGENT, READ, ManualClock, make_settings, order, running_client, tick

SIGNAL = {
    "agent": "mom-1",
    "role": "momentum",
    "symbol": "BTC-USD",
    "direction": "long",
    "strength": "0.5",
    "confidence": "0.5",
    "horizon_seconds": 60,
}


def counts(database_url: str) -> tuple[int, ...]:
    with psycopg.connect(database_url.replace("+psycopg", "")) as connection:
        row = connection.execute(
            "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM fills),"
            " (SELECT count(*) FROM signals),"
            " (SELECT sum(trades) FROM bars), (SELECT count(*) FROM orders WHERE status = 'new')"
        ).fetchone()
    assert row is not None
    return tuple(int(value or 0) for value in row)


async def ready_state(client: httpx.AsyncClient) -> dict[str, object]:
    response = await client.get("/readyz")
    body: dict[str, object] = response.json()
    return {"code": response.status_code, **body}


async def until(client: httpx.AsyncClient, condition: Callable[[dict[str, Any]], bool], what: str) -> None:
    """Poll /readyz until ``condition`` holds (10 s at most)."""

    async def probe() -> bool | None:
        return True if condition(await ready_state(client)) else None

    await processes.observe(probe, within=10, what=what)


def unpublished(state: dict[str, Any]) -> int:
    return int(state["engine"].get("unpublished_batches", 0))


async def test_a_redis_outage_holds_committed_events_refuses_new_writes_and_recovers(
    own_redis_server: services.RedisServer, trader_database_url: str, redis_prefix: str, clock: ManualClock
) -> None:
    settings = make_settings(
        trader_database_url, own_redis_server.url, redis_prefix, redis_timeout_seconds=0.5
    )
    async with running_client(settings, clock) as client:
        ticks = {"ticks": [tick("BTC-USD", "100.00", "100.10", ts=clock.now)]}
        assert (await client.post("/v1/ticks", json=ticks, headers=AGENT)).status_code == 200
        assert (await client.post("/v1/orders", json=order("before"), headers=AGENT)).status_code == 201
        resting = (
            await client.post("/v1/orders", json=order("rest", limit_price="99.00"), headers=AGENT)
        ).json()
        await until(client, lambda s: s["code"] == 200 and unpublished(s) == 0, "the events so far to be out")

        own_redis_server.pause()
        try:
            # The books do not need Redis: this order is durable, and its events wait.
            during = await client.post("/v1/orders", json=order("during"), headers=AGENT)
            assert during.status_code == 201
            await until(client, lambda s: unpublished(s) == 1, "the publisher to report the held batch")
            written = counts(trader_database_url)
            assert written[0] == 3  # before, rest, during

            refused = await client.post("/v1/orders", json=order("refused"), headers=AGENT)
            assert refused.status_code == 503
            assert "bus unavailable" in refused.json()["detail"]
            assert refused.headers["Retry-After"] == "1"
            ready = await ready_state(client)
            assert ready["code"] == 503
            assert str(ready["bus"]).startswith("error")
            assert ready["database"] == "ok"
            assert (await client.post("/v1/ticks", json=ticks, headers=AGENT)).status_code == 503
            assert (await client.post("/v1/signals", json=SIGNAL, headers=AGENT)).status_code == 503
            cancel = await client.post(f"/v1/orders/{resting['id']}/cancel", headers=AGENT)
            assert cancel.status_code == 503
            # Reads that need only the database keep working.
            assert (await client.get("/v1/portfolio", headers=READ)).status_code == 200
            assert counts(trader_database_url) == written
        finally:
            own_redis_server.resume()

        # The held batch is delivered once Redis is back, and writes are taken again.
        await until(client, lambda s: s["code"] == 200 and unpublished(s) == 0, "the held batch to go out")
        with psycopg.connect(trader_database_url.replace("+psycopg", "")) as connection:
            row = connection.execute("SELECT event_sequence FROM accounts").fetchone()
        assert row is not None
        last_committed = int(row[0])
        listener = redis.asyncio.Redis.from_url(own_redis_server.url)
        async with listener.pubsub() as pubsub:
            await pubsub.subscribe(f"{redis_prefix}events")
            assert (await client.post("/v1/orders", json=order("after"), headers=AGENT)).status_code == 201
            message = None
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        await listener.aclose()
        # No sequence number was skipped or reused across the outage.
        assert json.loads(message["data"])["seq"] == last_committed + 1
        assert (await client.post("/v1/signals", json=SIGNAL, headers=AGENT)).status_code == 201
