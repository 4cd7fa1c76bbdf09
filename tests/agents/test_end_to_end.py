"""End to end with the real trader API, real Postgres and real Redis: ticks in, then signals from
several roles, orders from the executor, and fills in Postgres."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
import redis

from sapphire.agents import client, runtime
from sapphire.agents.settings import AgentSettings
from sapphire.bus.names import Names
from sapphire.trader_api.app import create_app
from tests.agents import series
from tests.support import pubsub
from tests.support.processes import observe
from tests.support.trader_api import ServedApp, serving
from tests.trader_api import support

logger = logging.getLogger(__name__)

ROLES = ("momentum", "microstructure", "volatility", "sentiment", "strategist")
LIMITS = {
    "risk_max_order_notional": "20000",
    "risk_max_position_notional": "50000",
    "risk_max_gross_exposure": "100000",
    "risk_max_daily_loss": "10000",
}


@pytest.fixture
async def trader_api(trader_database_url: str, redis_url: str, redis_prefix: str) -> AsyncIterator[ServedApp]:
    """The real app on uvicorn, on a local socket: the agents' one way in."""
    settings = support.make_settings(
        trader_database_url, redis_url, redis_prefix, slippage_bps="2", fee_bps="1"
    )
    async with serving(create_app(settings)) as served:
        yield served


def agent_settings(redis_url: str, prefix: str, name: str, role: str, **extra: Any) -> AgentSettings:
    return AgentSettings(
        agent_name=name,
        role=role,
        symbols=["BTC-USD"],
        redis_url=redis_url,
        redis_key_prefix=prefix,
        agent_token=support.AGENT_TOKEN,
        interval_seconds=0.3,
        heartbeat_seconds=1.0,
        instruments_refresh_seconds=5.0,
        backoff_max_seconds=1.0,
        executor_decide_seconds=0.3,
        **extra,
    )


async def test_ticks_signals_orders_and_fills_in_postgres(
    trader_api: ServedApp, trader_database_url: str, redis_url: str, redis_prefix: str
) -> None:
    feed = httpx.AsyncClient(base_url=trader_api.url, headers=support.AGENT)
    stop = asyncio.Event()
    clients: list[client.TraderApiClient] = []
    tasks = []
    for name, role, extra in [
        *((f"{role}-1", role, {}) for role in ROLES),
        ("grok", "executor", LIMITS),
    ]:
        api = client.TraderApiClient(trader_api.url, token=support.AGENT_TOKEN)
        clients.append(api)
        tasks.append(
            asyncio.create_task(
                runtime.run_agent(
                    agent_settings(redis_url, redis_prefix, name, role, **extra), api=api, stop=stop
                )
            )
        )
    try:
        headline_api = clients[0]
        await headline_api.post_headline(
            text="Bitcoin rallies to a record as institutional demand surges",
            source="wire",
            symbol="BTC-USD",
            ts=datetime.now(UTC),
        )
        names = Names(redis_prefix)
        # Every role reads the ticks; the strategist and the executor also hear signals, and the
        # executor risk and fills.
        with redis.Redis.from_url(redis_url) as connection:
            expected = {names.ticks("BTC-USD"): 6, names.signals: 2, names.risk: 1, names.fills: 1}
            await pubsub.subscribed(pubsub.redis_count(connection), expected)
        prices = series.uptrend(n=160, start=60_000.0, drift=0.0004, noise=0.0001, seed=11)
        for i, price in enumerate(prices):
            tick = series.tick("BTC-USD", price, at=datetime.now(UTC), size=0.5, side=1 if i % 4 else -1)
            response = await feed.post("/v1/ticks", json={"ticks": [msgspec.to_builtins(tick)]})
            assert response.status_code == 200, response.text

        async def market_until_filled() -> list[dict[str, Any]] | None:
            """The market goes on (a tick per poll) until the executor's first order fills."""
            fills: list[dict[str, Any]] = (await feed.get("/v1/fills")).json()
            if fills:
                return fills
            tick = series.tick("BTC-USD", prices[-1] * 1.0002, at=datetime.now(UTC), size=0.5, side=1)
            await feed.post("/v1/ticks", json={"ticks": [msgspec.to_builtins(tick)]})
            return None

        await observe(market_until_filled, within=60, interval=0.3, what="the executor's first fill")

        async def roles_signalled() -> set[str] | None:
            roles = {s["role"] for s in (await feed.get("/v1/signals", params={"limit": 1000})).json()}
            return roles if {"momentum", "sentiment", "strategist"} <= roles else None

        await observe(roles_signalled, within=30, what="signals from momentum, sentiment and the strategist")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=15)
        for api in clients:
            await api.aclose()

    signals = (await feed.get("/v1/signals", params={"limit": 1000})).json()
    orders = (await feed.get("/v1/orders")).json()
    portfolio = (await feed.get("/v1/portfolio")).json()
    await feed.aclose()

    per_role = Counter(s["role"] for s in signals)
    assert per_role["momentum"] >= 1
    assert per_role["sentiment"] >= 1
    assert per_role["strategist"] >= 1
    assert all(o["agent"] == "grok" for o in orders)
    assert any(o["status"] == "filled" for o in orders)
    for order in orders:
        assert Decimal(order["quantity"]) * Decimal(order["limit_price"]) <= Decimal(
            LIMITS["risk_max_order_notional"]
        )

    with psycopg.connect(
        trader_database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    ) as connection:
        row = connection.execute("SELECT count(*), coalesce(sum(quantity), 0) FROM fills").fetchone()
    assert row is not None
    assert row[0] >= 1

    summary = {
        "signals_per_role": dict(sorted(per_role.items())),
        "orders": [(o["side"], o["quantity"], o["limit_price"], o["status"]) for o in orders],
        "fills_in_postgres": row[0],
        "equity": portfolio["equity"],
        "realized_pnl": portfolio["realized_pnl"],
        "unrealized_pnl": portfolio["unrealized_pnl"],
        "fees": portfolio["fees"],
    }
    print(f"\nEND-TO-END RUN: {summary}")
    logger.info("end-to-end run", extra=summary)
