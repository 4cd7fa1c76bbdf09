"""Binance spot's own protective orders, as the real ccxt client sends them: ccxt's unified
``stopLossPrice`` / ``takeProfitPrice`` on a limit order become ``STOP_LOSS_LIMIT`` /
``TAKE_PROFIT_LIMIT`` with ``stopPrice`` on the wire, and the local Binance triggers them as
Binance does. Then the trader API on the ccxt venue: its stops rest at the exchange and the
engine never fires them itself, reconciliation finds nothing amiss in them, an order the
exchange will not hold is emulated, and trailing stops stay emulated (Binance spot has none).
The cases both venues share are in ``test_venue_contract.py``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import pytest
from pydantic import SecretStr

from sapphire.trader_api.services import exchange
from sapphire.trader_api.settings import TraderApiSettings
from tests.support.fake_binance import API_KEY, SECRET, FakeBinance, running_fake_binance
from tests.support.processes import observe
from tests.trader_api import support
from tests.trader_api.support import AGENT, ManualClock, dec
from tests.trader_api.venue_harness import SYMBOL, WITHIN, Venue, on_fake_binance


@pytest.fixture
async def binance(settings: TraderApiSettings) -> AsyncIterator[tuple[FakeBinance, Any]]:
    async with running_fake_binance() as fake:
        chosen = settings.model_copy(
            update={
                "venue": "ccxt",
                "venue_api_key": SecretStr(API_KEY),
                "venue_api_secret": SecretStr(SECRET),
                "ccxt_api_origin": fake.url,
            }
        )
        client = exchange.build(chosen, "binance", setting="venue_exchange", private=True)
        try:
            await client.load_markets()
            yield fake, client
        finally:
            await client.close()


async def test_a_stop_loss_limit_rests_until_the_price_falls_to_it_then_fills(
    binance: tuple[FakeBinance, Any],
) -> None:
    fake, client = binance
    assert client.has["createStopLossOrder"]  # what the venue model would read to go native
    assert client.features["spot"]["createOrder"]["stopLossPrice"]
    fake.balances["BTC"] = Decimal("0.01")
    answer = await client.create_order(
        "BTC/USDT", "limit", "sell", "0.01", "63900", {"stopLossPrice": "64000", "newClientOrderId": "stop-1"}
    )
    resting = fake.by_client_id("stop-1")
    assert resting is not None
    assert (resting.type, resting.stop_price, resting.working) == ("STOP_LOSS_LIMIT", Decimal("64000"), False)
    assert answer["status"] == "open"
    assert Decimal(str(answer["triggerPrice"])) == Decimal("64000")

    await fake.set_price("BTCUSDT", Decimal("64500.00"), Decimal("64500.02"))  # above the stop
    assert not fake.orders[resting.order_id].working
    await fake.set_price("BTCUSDT", Decimal("63999.99"), Decimal("64000.01"))  # last 64000: triggers
    assert fake.orders[resting.order_id].working
    closed = await client.fetch_order(answer["id"], "BTC/USDT")
    assert closed["status"] == "closed"
    assert Decimal(str(closed["filled"])) == Decimal("0.01")
    trades = await client.fetch_my_trades("BTC/USDT", None, None, {"orderId": answer["id"]})
    assert [Decimal(str(t["price"])) for t in trades] == [
        Decimal("63999.99")
    ]  # at the touch, above its limit
    assert fake.balances["BTC"] == 0


async def test_a_take_profit_limit_triggers_on_a_rise_and_one_that_would_trigger_at_once_is_refused(
    binance: tuple[FakeBinance, Any],
) -> None:
    fake, client = binance
    fake.balances["BTC"] = Decimal("0.02")
    with pytest.raises(ccxt.InvalidOrder) as refused:
        await client.create_order("BTC/USDT", "limit", "sell", "0.01", "64000", {"takeProfitPrice": "64000"})
    assert "Order would trigger immediately" in str(refused.value)
    answer = await client.create_order(
        "BTC/USDT", "limit", "sell", "0.01", "66000", {"takeProfitPrice": "66000"}
    )
    placed = fake.orders[int(answer["id"])]
    assert (placed.type, placed.working) == ("TAKE_PROFIT_LIMIT", False)
    await fake.set_price("BTCUSDT", Decimal("65999.99"), Decimal("66000.01"))  # last 66000: triggers
    assert (placed.working, placed.status) == (
        True,
        "NEW",
    )  # works as a limit sell at 66000: the bid is below
    fake.trade(placed, Decimal("0.01"))
    assert (await client.fetch_order(answer["id"], "BTC/USDT"))["status"] == "closed"


@pytest.fixture
async def venue(settings: TraderApiSettings, clock: ManualClock) -> AsyncIterator[Venue]:
    async with on_fake_binance(settings, clock) as harness:
        yield harness


async def long_of(venue: Venue, quantity: str = "0.01") -> None:
    response = await venue.submit(support.order("entry", SYMBOL, "buy", quantity))
    assert response.status_code == 201, response.text
    await venue.settled(response.json()["id"], "filled", quantity)


def sell(client_order_id: str, kind: str, **fields: str) -> dict[str, Any]:
    body = {"client_order_id": client_order_id, "symbol": SYMBOL, "side": "sell", "type": kind}
    return {**body, "quantity": "0.01", **fields}


async def test_a_native_stop_limit_is_fired_by_the_exchange_not_by_the_engines_quotes(venue: Venue) -> None:
    fake = venue.fake
    assert fake is not None
    await long_of(venue)
    response = await venue.submit(
        sell("stop-limit", "stop_limit", stop_price="64000.00", limit_price="63900.00")
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending_new"
    stop = await venue.resting(response.json()["id"])
    held = fake.by_client_id(uuid.UUID(stop["id"]).hex)
    assert held is not None
    assert (held.type, held.stop_price, held.price) == ("STOP_LOSS_LIMIT", Decimal("64000"), Decimal("63900"))
    assert await venue.link.reconcile() == []  # a stop resting at the exchange is no difference
    placements = fake.placements
    amend = await venue.client.post(
        f"/v1/orders/{stop['id']}/replace",
        json={"client_order_id": "amend-stop", "stop_price": "63500.00"},
        headers=AGENT,
    )
    assert amend.status_code == 409, amend.text  # the exchange holds it: cancel and submit
    assert "cannot amend it in place" in amend.json()["detail"]

    # The engine's quote falls through the stop, the exchange's price does not: no emulation.
    ticked = support.tick(SYMBOL, "63000.00", "63000.02", ts=venue.clock.now, size="0")
    await support.send_ticks(venue.client, ticked)
    still = await venue.order(stop["id"])
    assert (still["status"], still["triggered_at"]) == ("accepted", None)
    assert fake.placements == placements
    assert not held.working

    await fake.set_price("BTCUSDT", Decimal("63999.99"), Decimal("64000.01"))  # the exchange's trigger
    fired = await venue.settled(stop["id"], "filled", "0.01")
    assert fired["reason"].startswith("stop_limit triggered at binance: stop_price 64000.00")
    assert "working since" in fired["reason"]
    assert dec(fired["average_price"]) == Decimal("63999.99")
    assert await venue.link.reconcile() == []
    assert len(await venue.fills(stop["id"])) == 1  # the trade seen by the poll and reconciliation: once
    assert await venue.position() == 0
    assert fake.placements == placements  # no second order ever went out for it


async def test_a_trailing_stop_stays_emulated_and_sells_at_market_when_it_fires(venue: Venue) -> None:
    fake = venue.fake
    assert fake is not None
    await long_of(venue)
    placements = fake.placements
    response = await venue.submit(sell("trail", "trailing_stop", trail_amount="500.00"))
    assert response.status_code == 201, response.text
    trailing = response.json()
    assert (trailing["status"], trailing["stop_price"]) == ("new", "64499.99")  # bid - 500, in the engine
    assert fake.placements == placements  # nothing at the exchange while it waits

    await venue.quote(Decimal("64400.00"), Decimal("64400.02"))
    fired = await venue.settled(trailing["id"], "filled", "0.01")
    assert fired["reason"].startswith("trailing_stop triggered: bid 64400.00 <= stop_price 64499.99")
    placed = fake.by_client_id(uuid.UUID(trailing["id"]).hex)
    assert placed is not None
    assert placed.type == "MARKET"
    assert await venue.position() == 0


async def test_a_take_profit_the_exchange_would_trigger_at_once_is_emulated_instead(venue: Venue) -> None:
    fake = venue.fake
    assert fake is not None
    await long_of(venue)
    # The bid is a cent below the target, the exchange's last price (the mid) is on it.
    await venue.quote(Decimal("65999.99"), Decimal("66000.01"))
    response = await venue.submit(sell("tp", "take_profit", stop_price="66000.00"))
    assert response.status_code == 201, response.text

    async def emulated() -> dict[str, Any] | None:
        order = await venue.order(response.json()["id"])
        return order if order["status"] == "new" else None

    declined = await observe(
        emulated, within=WITHIN, what="the take-profit emulated once the exchange declined it"
    )
    assert "Order would trigger immediately" in declined["reason"]
    assert "emulated in the engine" in declined["reason"]
    await venue.quote(Decimal("66000.00"), Decimal("66000.02"))  # the engine's rule: bid >= target
    taken = await venue.settled(declined["id"], "filled", "0.01")
    assert taken["reason"].startswith("take_profit triggered: bid 66000.00 >= stop_price 66000.00")
    assert await venue.position() == 0


async def test_a_native_stop_that_fired_while_sapphire_was_down_is_booked_once_on_restart(
    venue: Venue,
) -> None:
    fake = venue.fake
    assert fake is not None
    await long_of(venue)
    response = await venue.submit(sell("stop", "stop", stop_price="64000.00"))
    stop = await venue.resting(response.json()["id"])

    await venue.stop()
    await fake.set_price("BTCUSDT", Decimal("63999.99"), Decimal("64000.01"))  # it fires meanwhile
    held = fake.by_client_id(uuid.UUID(stop["id"]).hex)
    assert held is not None
    assert held.status == "FILLED"
    await venue.start()

    fired = await venue.settled(stop["id"], "filled", "0.01")
    assert fired["reason"].startswith("stop triggered at binance")
    assert await venue.position() == 0
    assert len(await venue.fills(stop["id"])) == 1
    assert await venue.link.reconcile() == []  # and a second reconciliation finds nothing more


async def test_a_declined_order_the_engines_quote_already_fires_goes_out_at_once(venue: Venue) -> None:
    fake = venue.fake
    assert fake is not None
    await long_of(venue)
    await venue.quote(Decimal("65999.99"), Decimal("66000.01"))  # the exchange's last price on the target
    fake.down = True  # the take-profit cannot reach the exchange yet
    response = await venue.submit(sell("tp-late", "take_profit", stop_price="66000.00"))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending_new"

    async def reducing() -> dict[str, Any] | None:
        risk = await venue.risk()
        return risk if risk["state"] == "REDUCING" else None

    await observe(reducing, within=WITHIN, what="the outage seen by the order on its way")
    # Meanwhile the engine's bid reaches the target: not the engine's to fire while native.
    ticked = support.tick(SYMBOL, "66000.00", "66000.02", ts=venue.clock.now, size="0")
    await support.send_ticks(venue.client, ticked)
    assert (await venue.order(response.json()["id"]))["status"] == "pending_new"
    fake.down = False  # the exchange declines it (its trigger is reached): emulated, it fires at once

    taken = await venue.settled(response.json()["id"], "filled", "0.01")
    assert taken["reason"].startswith("take_profit triggered: bid 66000.00 >= stop_price 66000.00")
    placed = fake.by_client_id(uuid.UUID(taken["id"]).hex)
    assert placed is not None
    assert placed.type == "MARKET"
    assert await venue.position() == 0
