"""The trader API on one venue, for the venue tests: the paper venue, or the ccxt venue
driving the real ccxt client against the local Binance (``tests/support/fake_binance.py``)."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from sapphire.trader_api.services.ccxt_venue import CcxtVenue
from sapphire.trader_api.settings import TraderApiSettings
from tests.support.fake_binance import API_KEY, SECRET, FakeBinance, running_fake_binance
from tests.support.processes import observe
from tests.trader_api import support
from tests.trader_api.support import AGENT, ManualClock, dec

SYMBOL = "BTC-USD"
WITHIN = 15.0
BID, ASK = Decimal("64999.99"), Decimal("65000.01")


@dataclasses.dataclass
class Venue:
    """One venue under the contract, with the trader API running on it (restartable)."""

    name: str
    settings: TraderApiSettings
    clock: ManualClock
    fake: FakeBinance | None
    app: contextlib.AsyncExitStack = dataclasses.field(default_factory=contextlib.AsyncExitStack)
    client: httpx.AsyncClient = dataclasses.field(init=False)
    api: FastAPI = dataclasses.field(init=False)

    @property
    def live(self) -> bool:
        return self.fake is not None

    async def start(self) -> None:
        self.api, self.client = await self.app.enter_async_context(
            support.running_app(self.settings, self.clock)
        )

    @property
    def link(self) -> CcxtVenue:
        """The running ccxt venue (its reconciliation, called by the tests at a chosen moment)."""
        link = self.api.state.writer.venue_link
        assert isinstance(link, CcxtVenue), "not a ccxt venue"
        return link

    async def stop(self) -> None:
        await self.app.aclose()
        self.app = contextlib.AsyncExitStack()

    async def quote(self, bid: Decimal = BID, ask: Decimal = ASK, size: Decimal = Decimal(0)) -> None:
        """The market's touch; ``size`` 0 so the paper venue fills only when :meth:`trade` says."""
        if self.fake is not None:
            await self.fake.set_price("BTCUSDT", bid, ask)
        tick = support.tick(SYMBOL, str(bid), str(ask), ts=self.clock.now, size=str(size))
        await support.send_ticks(self.client, tick)

    async def trade(self, order: dict[str, Any], quantity: str) -> None:
        """The market trades ``quantity`` against a resting buy limit order."""
        if self.fake is not None:
            resting = self.fake.by_client_id(uuid.UUID(order["id"]).hex)
            assert resting is not None, f"the exchange has no order {order['id']}"
            self.fake.trade(resting, Decimal(quantity))
            return
        price = dec(order["limit_price"])
        tick = support.tick(SYMBOL, str(price - 2), str(price), ts=self.clock.now, size=quantity)
        await support.send_ticks(self.client, tick)
        await self.quote()  # back above the limit: nothing more fills

    async def order(self, order_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/orders/{order_id}", headers=AGENT)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def settled(self, order_id: str, status: str, filled: str | None = None) -> dict[str, Any]:
        """The order once it reports ``status`` (and ``filled``)."""

        async def probe() -> dict[str, Any] | None:
            order = await self.order(order_id)
            if order["status"] == status and (filled is None or dec(order["filled_quantity"]) == dec(filled)):
                return order
            return None

        return await observe(probe, within=WITHIN, what=f"order {order_id} {status} {filled or ''}")

    async def resting(self, order_id: str) -> dict[str, Any]:
        """The order once the venue works it: ``new`` on paper, ``accepted`` at the exchange."""
        return await self.settled(order_id, "accepted" if self.live else "new")

    async def position(self) -> Decimal:
        response = await self.client.get("/v1/portfolio", headers=AGENT)
        assert response.status_code == 200, response.text
        for position in response.json()["positions"]:
            if position["symbol"] == SYMBOL:
                return dec(position["quantity"])
        return Decimal(0)

    async def fills(self, order_id: str) -> list[dict[str, Any]]:
        response = await self.client.get("/v1/fills", headers=AGENT, params={"symbol": SYMBOL})
        assert response.status_code == 200, response.text
        return [f for f in response.json() if f["order_id"] == order_id]

    async def submit(self, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post("/v1/orders", json=body, headers=AGENT)

    async def risk(self) -> dict[str, Any]:
        response = await self.client.get("/v1/risk", headers=AGENT)
        assert response.status_code == 200, response.text
        return dict(response.json())


def overrides(settings: TraderApiSettings, fake: FakeBinance | None) -> dict[str, Any]:
    """The test clock stands still while the exchange's answers arrive: quotes never go stale."""
    values: dict[str, Any] = {"risk": settings.risk.model_copy(update={"stale_quote_seconds": Decimal(3600)})}
    if fake is not None:
        values |= {
            "venue": "ccxt",
            "venue_api_key": SecretStr(API_KEY),
            "venue_api_secret": SecretStr(SECRET),
            "ccxt_api_origin": fake.url,
            "venue_poll_seconds": 0.05,
            "venue_reconcile_seconds": 3600,
            "venue_timeout_seconds": 0.5,
            "venue_retry_first_seconds": 0.05,
        }
    return values


@contextlib.asynccontextmanager
async def on_fake_binance(settings: TraderApiSettings, clock: ManualClock) -> AsyncIterator[Venue]:
    """The trader API on the ccxt venue against a fresh local Binance, quoted at the touch."""
    async with running_fake_binance() as fake, contextlib.AsyncExitStack() as stack:
        harness = Venue("ccxt", settings.model_copy(update=overrides(settings, fake)), clock, fake)
        await harness.start()
        stack.push_async_callback(harness.stop)
        await harness.quote()
        yield harness
