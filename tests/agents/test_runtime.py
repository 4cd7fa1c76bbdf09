"""The agent runtime on real Redis: ticks in, signals out, orders placed, outages survived."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio

from sapphire import bus as message_bus
from sapphire.agents import client, runtime, trading
from sapphire.agents import context as agent_context
from sapphire.agents.settings import AgentSettings
from tests.agents import fake_api, series
from tests.support import services


def settings(redis_url: str, prefix: str, **overrides: Any) -> AgentSettings:
    values: dict[str, Any] = {
        "agent_name": "mom-1",
        "role": "momentum",
        "symbols": ["BTC-USD"],
        "redis_url": redis_url,
        "redis_key_prefix": prefix,
        "agent_token": "agent-token",
        "interval_seconds": 0.2,
        "heartbeat_seconds": 0.2,
        "instruments_refresh_seconds": 0.2,
        "backoff_max_seconds": 0.5,
        "dev_mode": True,
    }
    values.update(overrides)
    return AgentSettings(**values)


async def eventually(condition: Callable[[], bool], *, within: float = 20.0) -> None:
    """Poll ``condition`` (state a fake API mutates, with no event to wait on) with a deadline."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polling a plain attribute
            await asyncio.sleep(0.05)


async def publish_ticks(
    redis_url: str, prefix: str, symbol: str, prices: list[float], *, pace: float = 0.0
) -> None:
    publisher = redis.asyncio.Redis.from_url(redis_url)
    try:
        for tick in series.prices_to_ticks(symbol, prices):
            await publisher.publish(f"{prefix}ticks:{symbol}", msgspec.json.encode(tick).decode())
            if pace:
                await asyncio.sleep(pace)
    finally:
        await publisher.aclose()


@pytest.fixture
async def api(redis_url: str, redis_prefix: str) -> AsyncIterator[fake_api.FakeTraderApi]:
    fake = fake_api.FakeTraderApi(redis_url=redis_url, prefix=redis_prefix)
    yield fake
    await fake.aclose()


def api_client(api: fake_api.FakeTraderApi, token: str = "agent-token") -> client.TraderApiClient:
    return client.TraderApiClient(
        "http://trader-api", token=token, transport=httpx.ASGITransport(app=api.app())
    )


class Running:
    """One agent running in the background of a test."""

    def __init__(self, agent_settings: AgentSettings, api: fake_api.FakeTraderApi) -> None:
        self.stop = asyncio.Event()
        self.client = api_client(api)
        self.task = asyncio.create_task(runtime.run_agent(agent_settings, api=self.client, stop=self.stop))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout=10)
        await self.client.aclose()


async def test_ticks_become_signals_and_signals_become_orders_within_limits(
    redis_url: str, redis_prefix: str, api: fake_api.FakeTraderApi
) -> None:
    executor_settings = settings(
        redis_url, redis_prefix, agent_name="grok", role="executor",
        risk_max_order_notional="2000", risk_max_position_notional="5000",
        risk_max_gross_exposure="8000", risk_max_daily_loss="500", executor_decide_seconds=0.2,
    )  # fmt: skip
    trader = Running(executor_settings, api)
    analyst = Running(settings(redis_url, redis_prefix), api)
    try:
        await eventually(lambda: len({h["name"] for h in api.heartbeats}) == 2)
        await publish_ticks(redis_url, redis_prefix, "BTC-USD", series.uptrend(n=120), pace=0.002)
        await eventually(lambda: any(s["agent"] == "mom-1" and s["direction"] == "long" for s in api.signals))
        await eventually(lambda: len(api.orders) >= 2)
    finally:
        await analyst.close()
        await trader.close()
    signal_ = next(s for s in api.signals if s["agent"] == "mom-1")
    assert signal_["role"] == "momentum"
    assert "EMA12" in signal_["rationale"]
    assert all(o["side"] == "buy" and o["agent"] == "grok" for o in api.orders.values())
    for order in api.orders.values():
        assert Decimal(order["quantity"]) * Decimal(order["limit_price"]) <= Decimal(2000)
    assert api.positions["BTC-USD"] * api.marks["BTC-USD"] <= Decimal(5000)


async def test_halted_stops_the_executor_at_once(
    redis_url: str, redis_prefix: str, api: fake_api.FakeTraderApi
) -> None:
    trader = Running(
        settings(
            redis_url, redis_prefix, agent_name="grok", role="executor",
            risk_max_order_notional="2000", risk_max_position_notional="5000",
            risk_max_gross_exposure="8000", risk_max_daily_loss="500", executor_decide_seconds=0.1,
        ),
        api,
    )  # fmt: skip
    publisher = redis.asyncio.Redis.from_url(redis_url)
    try:
        await eventually(lambda: bool(api.heartbeats))
        await publish_ticks(redis_url, redis_prefix, "BTC-USD", [100.0] * 3)
        await asyncio.sleep(0.3)
        await publisher.publish(f"{redis_prefix}risk", json.dumps({"state": "HALTED", "reason": "test"}))
        await asyncio.sleep(0.3)
        strong = {
            "agent": "mom-1", "role": "momentum", "symbol": "BTC-USD", "direction": "long", "strength": "1",
            "confidence": "1", "horizon_seconds": 600, "rationale": "up",
        }  # fmt: skip
        strong["created_at"] = datetime.now(UTC).isoformat()
        await publisher.publish(f"{redis_prefix}signals", json.dumps(strong))
        await publish_ticks(redis_url, redis_prefix, "BTC-USD", [100.0] * 3)
        await asyncio.sleep(1.0)
        assert api.orders == {}
        await publisher.publish(f"{redis_prefix}risk", json.dumps({"state": "ACTIVE"}))
        await eventually(lambda: len(api.orders) >= 1)
    finally:
        await publisher.aclose()
        await trader.close()


async def test_an_api_outage_is_survived_with_backoff(
    redis_url: str, redis_prefix: str, api: fake_api.FakeTraderApi
) -> None:
    api.down = True
    agent = Running(settings(redis_url, redis_prefix), api)
    try:
        await asyncio.sleep(1.0)
        assert not agent.task.done()
        assert api.heartbeats == []
        api.down = False
        await eventually(lambda: bool(api.heartbeats))
    finally:
        await agent.close()


async def test_a_redis_outage_is_survived_and_ticks_flow_again(
    own_redis_server: services.RedisServer, redis_prefix: str, api: fake_api.FakeTraderApi
) -> None:
    url = own_redis_server.fresh_database()
    api.redis_url = url
    agent = Running(settings(url, redis_prefix), api)
    try:
        await eventually(lambda: bool(api.heartbeats))
        await asyncio.sleep(0.3)
        own_redis_server.pause()
        await asyncio.sleep(1.0)
        own_redis_server.resume()
        assert not agent.task.done()

        async def trend_until_signal() -> None:
            # Each batch continues from where the last one ended: restarting the series would
            # be a sharp drop, which an analyst that resubscribed mid-batch rightly sells.
            price = 100.0
            while not api.signals:
                batch = series.uptrend(n=80, start=price)
                await publish_ticks(url, redis_prefix, "BTC-USD", batch, pace=0.001)
                price = batch[-1]

        await asyncio.wait_for(trend_until_signal(), timeout=30)
    finally:
        await agent.close()
    assert api.signals[0]["direction"] == "long"


async def test_all_market_mode_follows_the_instrument_list(
    redis_url: str, redis_prefix: str, api: fake_api.FakeTraderApi
) -> None:
    agent = Running(settings(redis_url, redis_prefix, symbols=[]), api)
    try:
        await eventually(lambda: any(h["symbols"] == ["BTC-USD"] for h in api.heartbeats))
        api.instruments = ["BTC-USD", "ETH-USD"]
        await eventually(lambda: any(h["symbols"] == ["BTC-USD", "ETH-USD"] for h in api.heartbeats))
        await asyncio.sleep(0.5)  # let the market loop resubscribe

        async def trend_until_signal() -> None:
            while not any(s["symbol"] == "ETH-USD" for s in api.signals):
                await publish_ticks(redis_url, redis_prefix, "ETH-USD", series.uptrend(n=80), pace=0.001)

        await asyncio.wait_for(trend_until_signal(), timeout=30)
        api.instruments = ["ETH-USD"]
        await eventually(lambda: api.heartbeats[-1]["symbols"] == ["ETH-USD"])
    finally:
        await agent.close()


async def test_sigterm_stops_the_agent_gracefully(
    redis_url: str, redis_prefix: str, api: fake_api.FakeTraderApi
) -> None:
    api_client_ = api_client(api)
    task = asyncio.create_task(runtime.run_agent(settings(redis_url, redis_prefix), api=api_client_))
    try:
        await eventually(lambda: bool(api.heartbeats))
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, timeout=10)
    finally:
        await api_client_.aclose()
    assert task.exception() is None


def test_the_executor_refuses_to_start_without_its_limits() -> None:
    with pytest.raises(ValueError, match="SAPPHIRE_RISK_MAX_ORDER_NOTIONAL"):
        AgentSettings(role="executor", dev_mode=True)


async def test_the_same_analysts_run_on_the_in_process_bus(
    redis_url: str, redis_prefix: str, api: fake_api.FakeTraderApi
) -> None:
    from sapphire.bus import memory

    bus = memory.MemoryBus()
    stop = asyncio.Event()
    api_client_ = api_client(api)
    task = asyncio.create_task(
        runtime.run_agent(settings(redis_url, redis_prefix), bus=bus, api=api_client_, stop=stop)
    )
    try:
        await eventually(lambda: bool(api.heartbeats))
        await asyncio.sleep(0.3)
        for tick in series.prices_to_ticks("BTC-USD", series.uptrend(n=80)):
            await bus.publish(f"{redis_prefix}ticks:BTC-USD", msgspec.json.encode(tick).decode())
        await eventually(lambda: bool(api.signals))
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await api_client_.aclose()
    assert api.signals[0]["direction"] == "long"


def test_the_executor_coalesces_decisions_per_symbol(redis_url: str, redis_prefix: str) -> None:
    context = agent_context.AgentContext(
        settings(
            redis_url, redis_prefix, agent_name="grok", role="executor",
            risk_max_order_notional="1000", risk_max_position_notional="5000",
            risk_max_gross_exposure="8000", risk_max_daily_loss="500",
        ),
        api=client.TraderApiClient("http://unused", token="t"),
        bus=message_bus.open_bus(redis_url, timeout=2.0),
        stop=asyncio.Event(),
    )  # fmt: skip
    agent = trading.ExecutorAgent.from_settings(context)
    assert agent.idle
    for _ in range(100):
        agent.mark_dirty(["BTC-USD", "ETH-USD"])
    agent.mark_dirty(["BTC-USD"])
    assert list(agent.dirty) == ["BTC-USD", "ETH-USD"]  # a set in arrival order, not a queue of 201
