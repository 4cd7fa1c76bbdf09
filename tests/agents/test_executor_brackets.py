"""The executor's entries are protected, against the real trader API (Postgres, Redis): with
``stopLossBps`` and ``takeProfitBps`` in its ``spec.risk`` settings, an entry's fill is
followed by a stop and a take-profit in one OCO group, priced from the fill to the exact tick;
then the market falls, the stop fills, the take-profit is canceled and the position is flat."""

from __future__ import annotations

import asyncio
import decimal
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from sapphire.agents import client, market, runtime
from sapphire.trader_api.app import create_app
from tests.agents.test_end_to_end import LIMITS, agent_settings
from tests.support.processes import observe
from tests.support.trader_api import ServedApp, serving
from tests.trader_api import support

logger = logging.getLogger(__name__)
TICK = Decimal("0.01")


@pytest.fixture
async def trader_api(trader_database_url: str, redis_url: str, redis_prefix: str) -> AsyncIterator[ServedApp]:
    settings = support.make_settings(trader_database_url, redis_url, redis_prefix)
    async with serving(create_app(settings)) as served:
        yield served


def long_signal() -> market.Signal:
    return market.Signal(
        agent="mom-1",
        role="momentum",
        symbol="BTC-USD",
        direction=market.Direction.LONG,
        strength=Decimal(1),
        confidence=Decimal(1),
        horizon_seconds=600,
        rationale="breakout",
        ts=datetime.now(UTC),
    )


async def send_quote(feed: httpx.AsyncClient, bid: str, ask: str) -> None:
    tick = {"symbol": "BTC-USD", "bid": bid, "ask": ask, "last": bid, "size": "5"}
    response = await feed.post("/v1/ticks", json={"ticks": [{**tick, "ts": datetime.now(UTC).isoformat()}]})
    assert response.status_code == 200, response.text


async def orders_by_id(feed: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for o in (await feed.get("/v1/orders")).json()}


async def test_an_entry_gets_a_stop_and_take_profit_and_the_stop_cancels_the_take_profit(
    trader_api: ServedApp, redis_url: str, redis_prefix: str
) -> None:
    feed = httpx.AsyncClient(base_url=trader_api.url, headers=support.AGENT)
    api = client.TraderApiClient(trader_api.url, token=support.AGENT_TOKEN)
    settings = agent_settings(
        redis_url,
        redis_prefix,
        "grok",
        "executor",
        **LIMITS,
        risk_stop_loss_bps="150",
        risk_take_profit_bps="300",
    )
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run_agent(settings, api=api, stop=stop))
    try:
        await send_quote(feed, "60000.00", "60000.10")
        assert (await feed.get("/v1/orders")).json() == []  # no entry before the signal
        await api.post_signal(long_signal())

        async def protected_entry() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
            await send_quote(feed, "60000.00", "60000.10")  # fresh quotes while the executor decides
            orders = await orders_by_id(feed)
            for entry in orders.values():
                legs = [o for o in orders.values() if o["parent_id"] == entry["id"]]
                if entry["status"] == "filled" and len(legs) == 2:
                    return entry, legs
            return None

        entry, legs = await observe(protected_entry, within=30, what="a filled entry with two legs")
    finally:
        stop.set()  # the legs live in the trader API: nothing the executor does from here on matters
        await asyncio.wait_for(task, timeout=15)
        await api.aclose()

    assert (entry["agent"], entry["side"], entry["type"]) == ("grok", "buy", "limit")
    assert entry["attached"]["stop_bps"] == "150"
    assert entry["attached"]["take_profit_bps"] == "300"
    average = Decimal(entry["average_price"])
    stop_leg = next(leg for leg in legs if leg["type"] == "stop")
    take_leg = next(leg for leg in legs if leg["type"] == "take_profit")
    # Exact decimals: the stop 1.5% below the fill, rounded up to the tick (toward the entry);
    # the take-profit 3% above, rounded up (away from it).
    expected_stop = (average * (1 - Decimal("0.015"))).quantize(TICK, rounding=decimal.ROUND_CEILING)
    expected_take = (average * (1 + Decimal("0.03"))).quantize(TICK, rounding=decimal.ROUND_CEILING)
    assert Decimal(stop_leg["stop_price"]) == expected_stop
    assert Decimal(take_leg["stop_price"]) == expected_take
    assert stop_leg["quantity"] == take_leg["quantity"] == entry["filled_quantity"]
    assert stop_leg["side"] == take_leg["side"] == "sell"
    assert stop_leg["oco_group"] == take_leg["oco_group"] is not None
    assert {stop_leg["status"], take_leg["status"]} == {"new"}

    below = expected_stop - 10 * TICK
    await send_quote(feed, str(below), str(below + TICK))  # the market falls through the stop

    orders = await orders_by_id(feed)
    stopped, canceled = orders[stop_leg["id"]], orders[take_leg["id"]]
    assert stopped["status"] == "filled"
    assert stopped["reason"].startswith(f"stop triggered: bid {below} <= stop_price {expected_stop}")
    assert Decimal(stopped["average_price"]) <= expected_stop
    assert canceled["status"] == "canceled"
    assert canceled["reason"].startswith(f"oco: {stopped['id']}")
    fills = (await feed.get("/v1/fills")).json()
    assert sorted((f["order_id"], f["side"]) for f in fills) == sorted(
        [(entry["id"], "buy"), (stopped["id"], "sell")]
    )
    positions = (await feed.get("/v1/portfolio")).json()["positions"]
    assert [Decimal(p["quantity"]) for p in positions if p["symbol"] == "BTC-USD"] == [0]
    summary = {
        "entry": (entry["side"], entry["filled_quantity"], entry["average_price"]),
        "stop": (stopped["stop_price"], stopped["status"], stopped["average_price"]),
        "take_profit": (take_leg["stop_price"], canceled["status"]),
        "fills": [(f["side"], f["quantity"], f["price"]) for f in fills],
    }
    print(f"\nEXECUTOR BRACKET RUN: {summary}")
    logger.info("executor bracket run", extra=summary)
    await feed.aclose()
