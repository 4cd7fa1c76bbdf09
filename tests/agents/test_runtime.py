"""The agent runtime against the real trader API (on uvicorn in the test's event loop, on SQLite
as ``sapphire up`` runs it) and real Redis: ticks in, signals out, orders placed, outages of
the API and of Redis survived.

Each test waits on facts: a subscription is in place once the bus counts it (``PUBSUB
NUMSUB``, or the in-process bus's own count), an agent has noticed an outage once its health
report shows the failing loop, the API holds what the agents sent once it answers with it."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import prometheus_client
import pytest
import redis
from prometheus_client import parser

from sapphire import bus as message_bus
from sapphire.agents import client, market, runtime, trading
from sapphire.agents import context as agent_context
from sapphire.agents.analysts.momentum import MomentumParams
from sapphire.agents.settings import AgentSettings
from sapphire.bus.names import Names
from sapphire.migrations import config as migrations
from sapphire.trader_api.app import create_app
from sapphire.trader_api.settings import TraderApiSettings
from tests.agents import series
from tests.support import processes, pubsub, services
from tests.support.trader_api import ServedApp, serving
from tests.trader_api import support

TREND = MomentumParams().slow_span + 16
"""Ticks of a trend that makes the momentum analyst signal: its warm-up (its slow EMA), and more."""

EXECUTOR_LIMITS = {
    "risk_max_order_notional": "2000",
    "risk_max_position_notional": "5000",
    "risk_max_gross_exposure": "8000",
    "risk_max_daily_loss": "500",
}


def settings(redis_url: str, prefix: str, **overrides: Any) -> AgentSettings:
    values: dict[str, Any] = {
        "agent_name": "mom-1",
        "role": "momentum",
        "symbols": ["BTC-USD"],
        "redis_url": redis_url,
        "redis_key_prefix": prefix,
        "agent_token": support.AGENT_TOKEN,
        "interval_seconds": 0.2,
        "heartbeat_seconds": 0.2,
        "instruments_refresh_seconds": 0.2,
        "backoff_max_seconds": 0.5,
        "dev_mode": True,
    }
    values.update(overrides)
    return AgentSettings(**values)


def executor_settings(redis_url: str, prefix: str, **overrides: Any) -> AgentSettings:
    return settings(
        redis_url, prefix, **{"agent_name": "grok", "role": "executor", **EXECUTOR_LIMITS, **overrides}
    )


async def eventually(condition: Callable[[], Awaitable[bool]], what: str, *, within: float = 20.0) -> None:
    """Until ``condition`` (a question to the API or an agent) holds."""

    async def probe() -> bool | None:
        return True if await condition() else None

    await processes.observe(probe, within=within, what=what)


class Trader:
    """The trader API as the tests see it: the agents' way in, and reads of what it holds."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10)

    def agent_client(self) -> client.TraderApiClient:
        return client.TraderApiClient(self.base_url, token=support.AGENT_TOKEN)

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.http.get(path, params=params, headers=support.READ)
        assert response.status_code == 200, response.text
        return response.json()

    async def heartbeats(self) -> dict[str, list[str]]:
        """The symbols each agent named in its latest heartbeat."""
        return {agent["name"]: agent["symbols"] for agent in await self.get("/v1/agents")}

    async def ticks(self, symbol: str, prices: list[float]) -> None:
        """One request per tick: the API publishes a batch's newest tick only (subscribers conflate)."""
        for price in prices:
            tick = series.tick(symbol, price, at=datetime.now(UTC))
            await support.send_ticks(self.http, msgspec.to_builtins(tick))

    async def first_signal(self, agent: str, **params: Any) -> dict[str, Any]:
        """The agent's first signal (matching ``params``), once the API holds one."""

        async def stored() -> dict[str, Any] | None:
            signals: list[dict[str, Any]] = await self.get("/v1/signals", agent=agent, **params)
            return min(signals, key=lambda s: s["created_at"]) if signals else None

        return await processes.observe(stored, within=20, what=f"a signal from {agent} {params}")

    async def set_risk_state(self, state: str) -> None:
        body = {"state": state, "reason": "test"}
        response = await self.http.put("/v1/risk/state", json=body, headers=support.ADMIN)
        assert response.status_code == 200, response.text

    async def order_submissions(self) -> float:
        """``POST /v1/orders`` requests the API has answered, whatever the answer (its /metrics)."""
        text = (await self.http.get("/metrics")).text
        return sum(
            sample.value
            for family in parser.text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "sapphire_http_requests_total"
            and sample.labels.get("method") == "POST"
            and sample.labels.get("route") == "/v1/orders"
        )


MEMORY_FILES = Path("/dev/shm")
"""Where the tests' SQLite files live when the machine has it: in memory, so a commit costs no
fsync (the tests' Postgres runs with fsync off for the same reason)."""


@pytest.fixture(scope="session")
def sqlite_directory() -> Iterator[Path]:
    parent = MEMORY_FILES if MEMORY_FILES.is_dir() else None
    directory = Path(tempfile.mkdtemp(prefix="sapphire-agents-", dir=parent))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated_sqlite(sqlite_directory: Path) -> Path:
    """A SQLite database at alembic head, migrated once; each test gets a copy (what ``sapphire
    up`` runs on: no server to start for these tests, which are about the agents)."""
    path = sqlite_directory / "template.db"
    migrations.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def database_url(migrated_sqlite: Path, sqlite_directory: Path) -> Iterator[str]:
    copy = sqlite_directory / f"{uuid.uuid4().hex}.db"
    shutil.copyfile(migrated_sqlite, copy)
    yield f"sqlite+aiosqlite:///{copy}"
    for leftover in sqlite_directory.glob(f"{copy.name}*"):  # the database, its WAL and shared memory
        leftover.unlink()


@pytest.fixture
def api_settings(database_url: str, redis_url: str, redis_prefix: str) -> TraderApiSettings:
    return support.make_settings(database_url, redis_url, redis_prefix, fee_bps="0")


@pytest.fixture
async def trader(api_settings: TraderApiSettings) -> AsyncIterator[Trader]:
    """The real app on uvicorn in this event loop, on a local socket."""
    async with serving(create_app(api_settings)) as served:
        trader = Trader(served.url)
        yield trader
        await trader.http.aclose()


@pytest.fixture
def redis_counts(redis_url: str) -> Iterator[pubsub.Count]:
    with redis.Redis.from_url(redis_url) as connection:
        yield pubsub.redis_count(connection)


async def health_report(port: int) -> dict[str, Any]:
    """An agent's own account of its loops (its ``/readyz``, served on ``metrics_port``)."""
    async with httpx.AsyncClient(timeout=2) as http:
        report: dict[str, Any] = (await http.get(f"http://127.0.0.1:{port}/readyz")).json()
    return report


def failed(port: int, loop: str, *, times: int) -> Callable[[], Awaitable[bool]]:
    """Whether the agent's ``loop`` has failed ``times`` times in a row, by its own account."""

    async def condition() -> bool:
        try:
            report = await health_report(port)
        except httpx.ConnectError:
            return False  # the agent is still starting: not serving its health yet
        return int(report["loops"].get(loop, {}).get("failures", 0)) >= times

    return condition


class Running:
    """One agent running in the background of a test."""

    def __init__(
        self, agent_settings: AgentSettings, trader: Trader, bus: message_bus.Bus | None = None
    ) -> None:
        self.stop = asyncio.Event()
        self.client = trader.agent_client()
        self.task = asyncio.create_task(
            runtime.run_agent(agent_settings, api=self.client, bus=bus, stop=self.stop)
        )

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout=10)
        await self.client.aclose()


async def test_ticks_become_signals_and_signals_become_orders_within_limits(
    trader: Trader, redis_url: str, redis_prefix: str, redis_counts: pubsub.Count
) -> None:
    names = Names(redis_prefix)
    executor = Running(executor_settings(redis_url, redis_prefix, executor_decide_seconds=0.2), trader)
    analyst = Running(settings(redis_url, redis_prefix), trader)
    try:
        # Both read the ticks; the executor also hears signals, risk and fills.
        expected = {names.ticks("BTC-USD"): 2, names.signals: 1, names.risk: 1, names.fills: 1}
        await pubsub.subscribed(redis_counts, expected)
        # A trend long and strong enough that the executor would buy past its position limit.
        await trader.ticks("BTC-USD", series.uptrend(n=120))

        signal_ = await trader.first_signal("mom-1")

        async def two_orders() -> bool:
            return len(await trader.get("/v1/orders")) >= 2

        await eventually(two_orders, "two orders from the executor")
    finally:
        await analyst.close()
        await executor.close()
    assert (signal_["role"], signal_["direction"]) == ("momentum", "long")
    assert "EMA12" in signal_["rationale"]
    orders = sorted(await trader.get("/v1/orders"), key=lambda o: o["created_at"])
    assert orders[0]["side"] == "buy"
    held = Decimal(0)
    for order in orders:
        assert order["agent"] == "grok"
        assert Decimal(order["quantity"]) * Decimal(order["limit_price"]) <= Decimal(2000)
        filled = Decimal(order["filled_quantity"])
        held += filled if order["side"] == "buy" else -filled
        # A long view: sells only trim the position back within its limit as the price rises.
        assert held >= 0
        assert held * Decimal(order["limit_price"]) <= Decimal(5000)


async def test_halted_stops_the_executor_at_once(
    trader: Trader, redis_url: str, redis_prefix: str, redis_counts: pubsub.Count
) -> None:
    """Driven as ``run_agent`` drives an executor, with what it has heard in view."""
    names = Names(redis_prefix)
    stop = asyncio.Event()
    api = trader.agent_client()
    bus = message_bus.open_bus(redis_url, timeout=runtime.AGENT_BUS_TIMEOUT)
    context = agent_context.AgentContext(
        executor_settings(redis_url, redis_prefix, executor_decide_seconds=0.1), api=api, bus=bus, stop=stop
    )
    agent = trading.ExecutorAgent.from_settings(context)
    engine = agent.engine
    task = asyncio.create_task(agent.run())

    async def holds(fact: Callable[[], bool], what: str) -> None:
        await processes.observe(lambda: True if fact() else None, within=20, what=what)

    def decisions() -> float:
        """Decisions the executor has finished, whatever their outcome (its own metric)."""
        return sum(
            sample.value
            for metric in prometheus_client.REGISTRY.collect()
            for sample in metric.samples
            if sample.name == "sapphire_executor_decisions_total"
            and sample.labels["agent"] == engine.config.agent
        )

    try:
        expected = {names.ticks("BTC-USD"): 1, names.signals: 1, names.risk: 1, names.fills: 1}
        await pubsub.subscribed(redis_counts, expected)
        await trader.ticks("BTC-USD", [100.0] * 3)
        await holds(lambda: "BTC-USD" in engine.quotes and "BTC-USD" in engine.instruments, "a quote")
        await trader.set_risk_state("HALTED")
        await holds(lambda: engine.risk_state is market.RiskState.HALTED, "the executor to hear HALTED")
        strong = market.Signal(
            agent="mom-1", role="momentum", symbol="BTC-USD", direction=market.Direction.LONG,
            strength=Decimal(1), confidence=Decimal(1), horizon_seconds=600, rationale="up",
        )  # fmt: skip
        await api.post_signal(strong)
        await holds(
            lambda: engine.consensus("BTC-USD", datetime.now(UTC)).score > 0,
            "the executor to hear the signal",
        )
        # Two more finished decisions: the second was taken up with the signal heard and HALTED
        # in force, the moment the executor would have ordered, and its order would be answered.
        seen = decisions()
        await holds(lambda: decisions() >= seen + 2, "the executor to decide on the signal")
        assert await trader.order_submissions() == 0, "the executor sent an order while HALTED"
        await trader.set_risk_state("ACTIVE")

        async def ordered() -> bool:
            return bool(await trader.get("/v1/orders"))

        await eventually(ordered, "an order once ACTIVE again")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        await bus.close()
        await api.aclose()


async def test_an_api_outage_is_survived_with_backoff(
    api_settings: TraderApiSettings, redis_url: str, redis_prefix: str
) -> None:
    """The real server, not serving yet: connections are refused until it does."""
    served = ServedApp()
    trader = Trader(served.url)
    health_port = processes.free_port()
    # A short backoff ceiling: the agent calls again soon after the API serves.
    agent = Running(
        settings(redis_url, redis_prefix, metrics_port=health_port, backoff_max_seconds=0.1), trader
    )
    try:
        # The agent has met the outage and tried again (its backoff), and is still running.
        await eventually(failed(health_port, "heartbeat", times=2), "two failed heartbeats")
        assert not agent.task.done()
        report = await health_report(health_port)
        assert report["ready"] is False
        assert "ApiUnavailableError" in report["loops"]["heartbeat"]["last_error"]
        await served.start(api_settings)

        async def heartbeat() -> bool:
            return "mom-1" in await trader.heartbeats()

        await eventually(heartbeat, "a heartbeat once the API serves")
    finally:
        await agent.close()
        await trader.http.aclose()
        await served.stop()


async def test_a_redis_outage_is_survived_and_ticks_flow_again(
    own_redis_server: services.RedisServer,
    database_url: str,
    redis_prefix: str,
) -> None:
    url = own_redis_server.fresh_database()
    ticks = Names(redis_prefix).ticks("BTC-USD")
    health_port = processes.free_port()
    api_settings = support.make_settings(database_url, url, redis_prefix)
    with redis.Redis.from_url(url) as connection:
        counts = pubsub.redis_count(connection)
        async with serving(create_app(api_settings)) as served:
            trader = Trader(served.url)
            agent = Running(settings(url, redis_prefix, metrics_port=health_port), trader)
            try:
                await pubsub.subscribed(counts, {ticks: 1})
                own_redis_server.pause()
                await eventually(failed(health_port, "market", times=1), "the tick stream to break")
                own_redis_server.resume()
                assert not agent.task.done()
                await pubsub.subscribed(counts, {ticks: 1})  # subscribed again, on the new server
                await trader.ticks("BTC-USD", series.uptrend(n=TREND))

                assert (await trader.first_signal("mom-1"))["direction"] == "long"
            finally:
                await agent.close()
                await trader.http.aclose()


async def test_all_market_mode_follows_the_instrument_list(
    api_settings: TraderApiSettings, redis_url: str, redis_prefix: str, redis_counts: pubsub.Count
) -> None:
    """The API restarted with another instrument list, as an operator lists and delists."""
    ticks = Names(redis_prefix).ticks
    listed = {i.symbol: i for i in api_settings.instruments}

    def listing(*symbols: str) -> TraderApiSettings:
        return api_settings.model_copy(update={"instruments": [listed[s] for s in symbols]})

    served = ServedApp()
    await served.start(listing("BTC-USD"))
    trader = Trader(served.url)
    # A short backoff ceiling: the agent calls again soon after the API serves again.
    agent = Running(settings(redis_url, redis_prefix, symbols=[], backoff_max_seconds=0.1), trader)

    async def heartbeat_names(*symbols: str) -> None:
        async def named() -> bool:
            return (await trader.heartbeats()).get("mom-1") == list(symbols)

        await eventually(named, f"a heartbeat naming {symbols}")

    try:
        await heartbeat_names("BTC-USD")
        await pubsub.subscribed(redis_counts, {ticks("BTC-USD"): 1, ticks("ETH-USD"): 0})
        await served.stop()
        await served.start(listing("ETH-USD"))  # ETH-USD listed, BTC-USD delisted
        await heartbeat_names("ETH-USD")
        await pubsub.subscribed(redis_counts, {ticks("BTC-USD"): 0, ticks("ETH-USD"): 1})
        await trader.ticks("ETH-USD", series.uptrend(n=TREND))

        assert (await trader.first_signal("mom-1", symbol="ETH-USD"))["direction"] == "long"
    finally:
        await agent.close()
        await trader.http.aclose()
        await served.stop()


async def test_sigterm_stops_the_agent_gracefully(trader: Trader, redis_url: str, redis_prefix: str) -> None:
    api = trader.agent_client()
    task = asyncio.create_task(runtime.run_agent(settings(redis_url, redis_prefix), api=api))
    try:

        async def heartbeat() -> bool:
            return "mom-1" in await trader.heartbeats()

        await eventually(heartbeat, "a heartbeat")
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, timeout=10)
    finally:
        await api.aclose()
    assert task.exception() is None


def test_the_executor_refuses_to_start_without_its_limits() -> None:
    with pytest.raises(ValueError, match="SAPPHIRE_RISK_MAX_ORDER_NOTIONAL"):
        AgentSettings(role="executor", dev_mode=True)


async def test_the_same_analysts_run_on_the_in_process_bus(database_url: str, redis_prefix: str) -> None:
    """As ``sapphire up`` runs them: the API and the agent share one in-process bus."""
    bus = message_bus.MemoryBus()
    api_settings = support.make_settings(database_url, "memory://", redis_prefix)
    async with serving(create_app(api_settings, message_bus=bus)) as served:
        trader = Trader(served.url)
        agent = Running(settings("memory://", redis_prefix), trader, bus=bus)
        try:
            await pubsub.subscribed(pubsub.memory_count(bus), {Names(redis_prefix).ticks("BTC-USD"): 1})
            await trader.ticks("BTC-USD", series.uptrend(n=TREND))

            assert (await trader.first_signal("mom-1"))["direction"] == "long"
        finally:
            await agent.close()
            await trader.http.aclose()


def test_the_executor_coalesces_decisions_per_symbol(redis_url: str, redis_prefix: str) -> None:
    context = agent_context.AgentContext(
        executor_settings(redis_url, redis_prefix, risk_max_order_notional="1000"),
        api=client.TraderApiClient("http://unused", token="t"),
        bus=message_bus.open_bus(redis_url, timeout=runtime.AGENT_BUS_TIMEOUT),
        stop=asyncio.Event(),
    )
    agent = trading.ExecutorAgent.from_settings(context)
    assert agent.idle
    for _ in range(100):
        agent.mark_dirty(["BTC-USD", "ETH-USD"])
    agent.mark_dirty(["BTC-USD"])
    assert list(agent.dirty) == ["BTC-USD", "ETH-USD"]  # a set in arrival order, not a queue of 201
