"""One contract for both venues: the paper venue and the ccxt venue driving the real ccxt
client against a local Binance spot exchange (``tests/support/fake_binance.py``).

Each case runs the real trader API in process (its lifespan, writer, journal on Postgres,
bus on Redis) and waits on what the API reports (``observe``), never on a sleep. What the
venue decides, the market's trades and the outages differ by venue; :class:`Venue` makes
them happen, and the assertions are the same for both."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from sapphire.trader_api.settings import TraderApiSettings
from tests.support.fake_binance import running_fake_binance
from tests.support.processes import observe
from tests.trader_api import support
from tests.trader_api.support import AGENT, ManualClock, dec
from tests.trader_api.venue_harness import SYMBOL, WITHIN, Venue, overrides


@pytest.fixture(params=["paper", "ccxt"])
async def venue(
    request: pytest.FixtureRequest, settings: TraderApiSettings, clock: ManualClock
) -> AsyncIterator[Venue]:
    async with contextlib.AsyncExitStack() as stack:
        fake = await stack.enter_async_context(running_fake_binance()) if request.param == "ccxt" else None
        chosen = settings.model_copy(update=overrides(settings, fake))
        harness = Venue(request.param, chosen, clock, fake)
        await harness.start()
        stack.push_async_callback(harness.stop)
        await harness.quote()
        yield harness


def limit_buy(client_order_id: str, quantity: str = "0.01", price: str = "64000.00") -> dict[str, Any]:
    return support.order(client_order_id, SYMBOL, "buy", quantity, limit_price=price)


async def test_partial_fills_then_filled(venue: Venue) -> None:
    response = await venue.submit(limit_buy("partial-1"))
    assert response.status_code == 201, response.text
    order = await venue.resting(response.json()["id"])
    assert dec(order["filled_quantity"]) == 0

    await venue.trade(order, "0.004")
    partial = await venue.settled(order["id"], "partially_filled", "0.004")
    assert dec(partial["average_price"]) == Decimal("64000")
    await venue.trade(order, "0.006")
    await venue.settled(order["id"], "filled", "0.01")

    fills = await venue.fills(order["id"])
    assert sorted(dec(f["quantity"]) for f in fills) == [Decimal("0.004"), Decimal("0.006")]
    assert await venue.position() == Decimal("0.01")


async def test_a_cancel_racing_a_fill_loses_to_the_fill(venue: Venue) -> None:
    response = await venue.submit(limit_buy("race-1"))
    order = await venue.resting(response.json()["id"])

    await venue.trade(order, "0.01")  # the market fills it in full...
    cancel = await venue.client.post(f"/v1/orders/{order['id']}/cancel", headers=AGENT)  # ...as we cancel
    # Paper: the fill is already booked (409, no longer open); live: pending_cancel until the exchange says.
    assert cancel.status_code in (200, 409), cancel.text

    filled = await venue.settled(order["id"], "filled", "0.01")
    assert "cancel" not in filled["reason"] or venue.live
    assert await venue.position() == Decimal("0.01")
    assert len(await venue.fills(order["id"])) == 1


async def test_a_cancel_after_a_partial_fill_keeps_the_fill(venue: Venue) -> None:
    response = await venue.submit(limit_buy("race-2"))
    order = await venue.resting(response.json()["id"])
    await venue.trade(order, "0.004")
    await venue.settled(order["id"], "partially_filled", "0.004")

    cancel = await venue.client.post(f"/v1/orders/{order['id']}/cancel", headers=AGENT)
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["status"] == ("pending_cancel" if venue.live else "canceled")
    canceled = await venue.settled(order["id"], "canceled", "0.004")
    assert canceled["reason"] == "canceled by request"
    assert await venue.position() == Decimal("0.004")


async def test_rejects_say_why_and_move_nothing(venue: Venue) -> None:
    if venue.fake is not None:  # the exchange refuses: the balance is short
        venue.fake.balances["USDT"] = Decimal("100")
        response = await venue.submit(limit_buy("reject-1", "0.01", "64000.00"))
        assert response.status_code == 201, response.text
        rejected = await venue.settled(response.json()["id"], "rejected")
        reason = rejected["reason"]
        assert "insufficient funds" in reason
        assert "Account has insufficient balance" in reason
        assert venue.fake.placements == 0
    else:  # the paper venue's own refusal: a limit beyond the price collar
        response = await venue.submit(limit_buy("reject-1", "0.01", "10000.00"))
        assert response.status_code == 422, response.text
        reason = response.text
        assert "price_collar" in reason
    assert await venue.position() == 0


async def test_a_resubmission_after_a_timeout_opens_one_order(venue: Venue) -> None:
    body = support.order("resubmit-1", SYMBOL, "buy", "0.01")
    if venue.fake is not None:
        venue.fake.hold_next_answer = True  # the exchange places it, but answers past ccxt's timeout
    first = await venue.submit(body)
    assert first.status_code == 201, first.text
    again = await venue.submit(body)  # the client's own retry, same client_order_id
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]

    await venue.settled(first.json()["id"], "filled", "0.01")
    assert await venue.position() == Decimal("0.01")
    if venue.fake is not None:
        assert venue.fake.placements == 1
        assert venue.fake.requests.count(("POST", "/api/v3/order")) == 1  # looked up, not resent
        assert ("GET", "/api/v3/order") in venue.fake.requests  # the lookup by client order id


@pytest.mark.parametrize("venue", ["ccxt"], indirect=True)
async def test_an_order_lost_on_the_way_is_resent_with_the_same_client_order_id(venue: Venue) -> None:
    """Only a live venue has a network between it and the engine."""
    assert venue.fake is not None
    venue.fake.lose_next_orders = 2  # the gateway times out twice before the exchange sees the order
    response = await venue.submit(support.order("lost-1", SYMBOL, "buy", "0.01"))
    await venue.settled(response.json()["id"], "filled", "0.01")
    assert venue.fake.requests.count(("POST", "/api/v3/order")) == 3
    assert venue.fake.placements == 1
    placed = venue.fake.by_client_id(uuid.UUID(response.json()["id"]).hex)
    assert placed is not None
    assert placed.status == "FILLED"


async def test_restart_keeps_the_books_and_reconciles_what_happened_meanwhile(venue: Venue) -> None:
    response = await venue.submit(limit_buy("restart-1"))
    order = await venue.resting(response.json()["id"])
    await venue.trade(order, "0.004")
    await venue.settled(order["id"], "partially_filled", "0.004")

    await venue.stop()
    resting = None
    if venue.fake is not None:
        resting = venue.fake.by_client_id(uuid.UUID(order["id"]).hex)
        assert resting is not None
        venue.fake.trade(resting, Decimal("0.002"))  # while no Sapphire is running
    await venue.start()

    expected = "0.006" if venue.live else "0.004"
    after = await venue.settled(order["id"], "partially_filled", expected)
    assert await venue.position() == dec(expected)
    assert len(await venue.fills(order["id"])) == (2 if venue.live else 1)
    assert after["exchange_order_id"] == (None if resting is None else str(resting.order_id))


@pytest.mark.parametrize("venue", ["ccxt"], indirect=True)
async def test_an_exchange_outage_refuses_new_orders_and_reduces_risk(venue: Venue) -> None:
    """Only a live venue can be down: the paper venue runs inside the API."""
    assert venue.fake is not None
    venue.fake.down = True
    first = await venue.submit(support.order("outage-1", SYMBOL, "buy", "0.01"))
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "pending_new"

    async def reducing() -> dict[str, Any] | None:
        risk = await venue.risk()
        return risk if risk["state"] == "REDUCING" else None

    risk = await observe(reducing, within=WITHIN, what="risk REDUCING during the outage")
    assert "exchange not available" in risk["reason"]
    refused = await venue.submit(support.order("outage-2", SYMBOL, "buy", "0.01"))
    assert refused.status_code == 503, refused.text
    assert "exchange is not available" in refused.json()["detail"]
    assert venue.fake.placements == 0

    venue.fake.down = False
    await venue.settled(first.json()["id"], "filled", "0.01")
    assert venue.fake.placements == 1

    async def active() -> dict[str, Any] | None:
        risk = await venue.risk()
        return risk if risk["state"] == "ACTIVE" else None

    await observe(active, within=WITHIN, what="risk ACTIVE once the exchange answers")


def protective(client_order_id: str, kind: str, quantity: str = "0.01", **fields: str) -> dict[str, Any]:
    return {
        "client_order_id": client_order_id,
        "symbol": SYMBOL,
        "side": "sell",
        "type": kind,
        "quantity": quantity,
        **fields,
    }


async def bought(venue: Venue, client_order_id: str, **body: Any) -> dict[str, Any]:
    """A long of 0.01 from a market buy (``body``: more fields of the entry)."""
    response = await venue.submit({**support.order(client_order_id, SYMBOL, "buy", "0.01"), **body})
    assert response.status_code == 201, response.text
    return await venue.settled(response.json()["id"], "filled", "0.01")


async def test_a_stop_rests_then_fires_once_when_the_price_falls_through_it(venue: Venue) -> None:
    """Paper: emulated in the engine. ccxt: native, a ``STOP_LOSS`` resting at the exchange."""
    await bought(venue, "stop-entry")
    response = await venue.submit(protective("stop-1", "stop", stop_price="64000.00"))
    assert response.status_code == 201, response.text
    stop = await venue.resting(response.json()["id"])
    assert stop["triggered_at"] is None
    if venue.fake is not None:
        held = venue.fake.by_client_id(uuid.UUID(stop["id"]).hex)
        assert held is not None
        assert (held.type, held.stop_price, held.working) == ("STOP_LOSS", Decimal("64000"), False)

    await venue.quote(Decimal("63999.99"), Decimal("64000.01"))  # bid and the last price reach the stop
    fired = await venue.settled(stop["id"], "filled", "0.01")
    assert fired["triggered_at"] is not None
    assert fired["reason"].startswith("stop triggered")
    assert dec(fired["average_price"]) <= Decimal("64000")  # never better than the stop allows
    assert await venue.position() == 0
    assert len(await venue.fills(stop["id"])) == 1
    if venue.fake is not None:
        assert "at binance" in fired["reason"]
        assert await venue.link.reconcile() == []  # booked once, nothing differs
        assert len(await venue.fills(stop["id"])) == 1


async def test_a_brackets_first_leg_to_fill_cancels_the_other(venue: Venue) -> None:
    """Both legs wait in the engine, on every venue (two exchange orders would lock the same
    coins twice); the take-profit fires and fills, and its fill cancels the stop."""
    entry = await bought(
        venue, "bracket-1", attached={"stop_price": "64000.00", "take_profit_price": "66000.00"}
    )

    async def legs() -> dict[str, dict[str, Any]] | None:
        response = await venue.client.get("/v1/orders", headers=AGENT, params={"symbol": SYMBOL})
        assert response.status_code == 200, response.text
        found = {o["client_order_id"].rsplit("/", 1)[1]: o for o in response.json() if o["parent_id"]}
        return found if [o["status"] for o in found.values()] == ["new", "new"] else None

    waiting = await observe(legs, within=WITHIN, what="both legs waiting")
    assert all(o["parent_id"] == entry["id"] for o in waiting.values())
    if venue.fake is not None:  # neither leg is at the exchange
        assert [venue.fake.by_client_id(uuid.UUID(o["id"]).hex) for o in waiting.values()] == [None, None]

    await venue.quote(Decimal("66000.00"), Decimal("66000.02"))  # up to the target
    taken = await venue.settled(waiting["take_profit"]["id"], "filled", "0.01")
    assert dec(taken["average_price"]) >= Decimal("65990")  # a market order once fired
    assert taken["reason"].startswith("take_profit triggered")
    stopped = await venue.settled(waiting["stop"]["id"], "canceled", "0")
    assert stopped["reason"].startswith("oco: ")
    assert await venue.position() == 0
    if venue.fake is not None:
        assert venue.fake.by_client_id(uuid.UUID(stopped["id"]).hex) is None  # never sent
