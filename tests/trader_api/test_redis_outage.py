"""Redis goes away mid-test: order intake answers 503 and /readyz fails with nothing
half-written; Redis comes back and the same API process recovers by itself."""

from __future__ import annotations

import psycopg

from tests.support import services
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


async def test_order_intake_refuses_during_a_redis_outage_and_recovers_after_it(
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
        assert (await client.get("/readyz")).status_code == 200
        written = counts(trader_database_url)

        own_redis_server.pause()
        try:
            refused = await client.post("/v1/orders", json=order("during"), headers=AGENT)
            assert refused.status_code == 503
            assert "bus unavailable" in refused.json()["detail"]
            assert refused.headers["Retry-After"] == "1"
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["bus"].startswith("error")
            assert ready.json()["database"] == "ok"
            assert (await client.post("/v1/ticks", json=ticks, headers=AGENT)).status_code == 503
            assert (await client.post("/v1/signals", json=SIGNAL, headers=AGENT)).status_code == 503
            cancel = await client.post(f"/v1/orders/{resting['id']}/cancel", headers=AGENT)
            assert cancel.status_code == 503
            # Reads that need only the database keep working.
            assert (await client.get("/v1/portfolio", headers=READ)).status_code == 200
            assert counts(trader_database_url) == written
        finally:
            own_redis_server.resume()

        assert (await client.get("/readyz")).status_code == 200
        # The restarted Redis kept nothing, so the first order waits for a fresh quote.
        assert (await client.post("/v1/orders", json=order("after"), headers=AGENT)).json()[
            "rule"
        ] == "stale_quote"
        assert (await client.post("/v1/ticks", json=ticks, headers=AGENT)).status_code == 200
        assert (await client.post("/v1/orders", json=order("after"), headers=AGENT)).status_code == 201
        assert (await client.post("/v1/signals", json=SIGNAL, headers=AGENT)).status_code == 201
