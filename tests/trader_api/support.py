"""Helpers for the trader API tests: tokens, a settable clock, and request shortcuts."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI

from sapphire.trader_api.app import create_app
from sapphire.trader_api.services.runtime import Clock
from sapphire.trader_api.settings import TraderApiSettings

READ_TOKEN = "read-token-0123456789"
AGENT_TOKEN = "agent-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


READ = bearer(READ_TOKEN)
AGENT = bearer(AGENT_TOKEN)
ADMIN = bearer(ADMIN_TOKEN)


@dataclasses.dataclass
class ManualClock:
    """A clock the test moves by hand (the API takes its clock as a constructor argument)."""

    now: datetime = dataclasses.field(default_factory=lambda: datetime(2026, 3, 2, 14, 30, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def tick(
    symbol: str, bid: str, ask: str, *, ts: datetime, last: str | None = None, size: str = "10"
) -> dict[str, str]:
    return {"symbol": symbol, "bid": bid, "ask": ask, "last": last or bid, "size": size, "ts": ts.isoformat()}


def order(
    client_order_id: str,
    symbol: str = "BTC-USD",
    side: str = "buy",
    quantity: str = "1",
    *,
    limit_price: str | None = None,
    time_in_force: str = "gtc",
    agent: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_order_id": client_order_id,
        "symbol": symbol,
        "side": side,
        "type": "limit" if limit_price else "market",
        "quantity": quantity,
        "time_in_force": time_in_force,
    }
    if limit_price:
        body["limit_price"] = limit_price
    if agent:
        body["agent"] = agent
    return body


async def send_ticks(client: httpx.AsyncClient, *ticks: Mapping[str, str]) -> None:
    response = await client.post("/v1/ticks", json={"ticks": list(ticks)}, headers=AGENT)
    assert response.status_code == 200, response.text


def dec(value: Any) -> Decimal:
    return Decimal(str(value))


def make_settings(database_url: str, redis_url: str, prefix: str, **overrides: Any) -> TraderApiSettings:
    """Settings for a test: its database, Redis and prefix, the test tokens, no slippage, 10 bps fees."""
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "redis_key_prefix": prefix,
        "read_token": READ_TOKEN,
        "agent_token": AGENT_TOKEN,
        "admin_token": ADMIN_TOKEN,
        "slippage_bps": "0",
        "fee_bps": "10",
    }
    values.update(overrides)
    return TraderApiSettings(**values)


@contextlib.asynccontextmanager
async def running_app(
    settings: TraderApiSettings, clock: Clock | None = None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app with its lifespan running, and an httpx client to it on the ASGI transport."""
    app = create_app(settings, clock=clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://trader") as client,
    ):
        yield app, client


@contextlib.asynccontextmanager
async def running_client(
    settings: TraderApiSettings, clock: Clock | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An app with its lifespan running, behind an httpx client on the ASGI transport."""
    async with running_app(settings, clock) as (_, client):
        yield client


def signal(agent: str = "mom-1", symbol: str = "BTC-USD", **fields: object) -> dict[str, object]:
    """A valid ``POST /v1/signals`` body; ``fields`` replace or add to it."""
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
