"""The same code on SQLite and the in-process bus: what ``sapphire up`` runs by default."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from sapphire.bus.memory import MemoryBus
from sapphire.migrations import config as migrations
from sapphire.trader_api.app import create_app
from sapphire.trader_api.settings import TraderApiSettings
from tests.trader_api.support import (
    AGENT,
    READ,
    ManualClock,
    dec,
    make_settings,
    order,
    send_ticks,
    signal,
    tick,
)


@pytest.fixture
def embedded_settings(tmp_path: Path) -> TraderApiSettings:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sapphire.db'}"
    migrations.upgrade(url)
    return make_settings(url, "memory://", "sapphire:")


async def test_orders_fills_and_events_work_on_sqlite_with_the_memory_bus(
    embedded_settings: TraderApiSettings, clock: ManualClock
) -> None:
    bus = MemoryBus()
    app = create_app(embedded_settings, message_bus=bus, clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://embedded") as client,
        bus.subscribe(["sapphire:events", "sapphire:ticks:BTC-USD"]) as subscription,
    ):
        assert (await client.get("/readyz")).status_code == 200
        await send_ticks(client, tick("BTC-USD", "100.00", "100.10", ts=clock.now))
        resting = await client.post(
            "/v1/orders", json=order("e1", quantity="2", limit_price="99.90"), headers=AGENT
        )
        assert resting.json()["status"] == "new"
        await send_ticks(client, tick("BTC-USD", "99.80", "99.90", ts=clock.now, size="5"))
        filled = (await client.get(f"/v1/orders/{resting.json()['id']}", headers=READ)).json()
        assert filled["status"] == "filled"
        portfolio = (await client.get("/v1/portfolio", headers=READ)).json()
        assert dec(portfolio["positions"][0]["average_price"]) == dec("99.90")
        assert dec(portfolio["fees"]) == dec("0.1998")
        kinds, sequence = [], []
        while (message := await subscription.get(wait_seconds=0.1)) is not None:
            envelope = json.loads(message.data)
            kinds.append(envelope.get("type", message.channel))
            if "seq" in envelope:
                sequence.append(envelope["seq"])
    assert kinds == [
        "sapphire:ticks:BTC-USD",
        "order",
        "sapphire:ticks:BTC-USD",
        "fill",
        "order",
        "portfolio",
    ]
    assert sequence == list(range(sequence[0], sequence[0] + 4))  # one more per event


async def test_concurrent_duplicates_make_exactly_one_order_on_sqlite(
    embedded_settings: TraderApiSettings, clock: ManualClock
) -> None:
    app = create_app(embedded_settings, clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://embedded") as client,
    ):
        await send_ticks(client, tick("BTC-USD", "100.00", "100.10", ts=clock.now))
        responses = await asyncio.gather(
            *(client.post("/v1/orders", json=order("same"), headers=AGENT) for _ in range(10))
        )
        assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
        assert len((await client.get("/v1/orders", headers=READ)).json()) == 1


async def test_signals_are_stored_published_and_checked_against_the_role_on_sqlite(
    embedded_settings: TraderApiSettings, clock: ManualClock
) -> None:
    bus = MemoryBus()
    app = create_app(embedded_settings, message_bus=bus, clock=clock)
    body = signal()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://embedded") as client,
        bus.subscribe(["sapphire:signals"]) as subscription,
    ):
        beat = {"role": "momentum", "symbols": ["BTC-USD"]}
        assert (await client.post("/v1/agents/mom-1/heartbeat", json=beat, headers=AGENT)).status_code == 200
        responses = await asyncio.gather(
            client.post("/v1/signals", json=body, headers=AGENT),
            client.post("/v1/signals", json={**body, "role": "volatility"}, headers=AGENT),
        )
        assert [r.status_code for r in responses] == [201, 422], [r.text for r in responses]
        stored = responses[0].json()
        assert (stored["strength"], stored["direction"]) == ("0.6", "long")
        message = await subscription.get(wait_seconds=5)
        assert message is not None
        assert json.loads(message.data) == stored
        assert await subscription.get(wait_seconds=0.1) is None, "the refused signal is not published"
        assert (await client.get("/v1/signals", headers=READ)).json() == [stored]
