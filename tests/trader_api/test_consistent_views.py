"""A portfolio read while orders fill sees the books before or after each fill, never half of one.

With constant prices, buying at the ask only costs fees and the spread, so every equity a
reader sees stays within that cost of the starting equity. A view that read cash after a
fill but positions before it would be off by the whole order's notional.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import httpx

from sapphire.bus.memory import MemoryBus
from sapphire.migrations import config as migrations
from sapphire.trader_api.app import create_app
from sapphire.trader_api.settings import TraderApiSettings
from tests.trader_api.support import AGENT, READ, ManualClock, dec, make_settings, order, send_ticks, tick

ORDERS = 30
QUANTITY = Decimal("10")
BID, ASK = Decimal("100.00"), Decimal("100.10")


async def watch_equity_while_buying(settings: TraderApiSettings, clock: ManualClock) -> list[Decimal]:
    app = create_app(settings, message_bus=MemoryBus(), clock=clock)
    seen: list[Decimal] = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://trader") as client,
    ):
        await send_ticks(client, tick("BTC-USD", str(BID), str(ASK), ts=clock.now, size="100000"))
        start = dec((await client.get("/v1/portfolio", headers=READ)).json()["equity"])
        buying = True

        async def buy() -> None:
            nonlocal buying
            for number in range(ORDERS):
                body = order(f"c{number}", side="buy", quantity=str(QUANTITY))
                response = await client.post("/v1/orders", json=body, headers=AGENT)
                assert response.status_code == 201, response.text
            buying = False

        async def read() -> None:
            while buying:
                seen.append(dec((await client.get("/v1/portfolio", headers=READ)).json()["equity"]) - start)

        await asyncio.gather(buy(), read(), read())
    return seen


def assert_no_torn_view(changes: list[Decimal]) -> None:
    worst_cost = ORDERS * QUANTITY * (ASK * Decimal("0.001") + (ASK - BID))  # 10 bps fees + spread
    # The precondition: the readers saw the books at several points between the fills.
    assert len(set(changes)) >= 3, f"the readers did not run while orders filled: {changes}"
    torn = [change for change in changes if not (-worst_cost <= change <= 0)]
    assert torn == [], f"views off by about one order's notional: {torn[:5]}"


async def test_sqlite_views_are_never_torn(tmp_path: Path, clock: ManualClock) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sapphire.db'}"
    migrations.upgrade(url)
    changes = await watch_equity_while_buying(make_settings(url, "memory://", "sapphire:"), clock)
    assert_no_torn_view(changes)


async def test_postgres_views_are_never_torn(trader_database_url: str, clock: ManualClock) -> None:
    changes = await watch_equity_while_buying(
        make_settings(trader_database_url, "memory://", "sapphire:"), clock
    )
    assert_no_torn_view(changes)
