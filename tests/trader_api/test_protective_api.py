"""Protective orders through the API, on Postgres and Redis: a bracket around a long
position (a trailing stop and a take-profit in one OCO group) stops out on a falling market,
the position ends flat, the take-profit is canceled by the stop's fill, and a malformed
protective order gets a 422 that names its field."""

from __future__ import annotations

import httpx

from tests.trader_api.support import AGENT, READ, ManualClock, dec, order, send_ticks, tick


async def quote(client: httpx.AsyncClient, clock: ManualClock, bid: str, ask: str) -> None:
    clock.advance(1)
    await send_ticks(client, tick("BTC-USD", bid, ask, ts=clock.now, size="100"))


async def test_a_trailing_stop_follows_the_market_up_then_stops_the_position_out(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await quote(client, clock, "100.00", "100.10")
    entry = await client.post("/v1/orders", json=order("entry", quantity="2"), headers=AGENT)
    assert entry.status_code == 201, entry.text
    guard = {"symbol": "BTC-USD", "side": "sell", "quantity": "2", "oco_group": "entry-guard"}
    stop = await client.post(
        "/v1/orders",
        json={**guard, "client_order_id": "trail", "type": "trailing_stop", "trail_amount": "1.00"},
        headers=AGENT,
    )
    take = await client.post(
        "/v1/orders",
        json={**guard, "client_order_id": "take", "type": "take_profit", "stop_price": "110.00"},
        headers=AGENT,
    )
    assert (stop.status_code, take.status_code) == (201, 201), (stop.text, take.text)
    assert stop.json()["stop_price"] == "99.00"  # bid 100.00 - 1.00
    assert stop.json()["status"] == "new"
    assert stop.json()["triggered_at"] is None

    await quote(client, clock, "103.00", "103.10")  # up: the stop follows to 102.00
    moved = (await client.get(f"/v1/orders/{stop.json()['id']}", headers=READ)).json()
    assert (moved["stop_price"], moved["status"]) == ("102.00", "new")

    await quote(client, clock, "101.50", "101.60")  # down through the stop
    stopped = (await client.get(f"/v1/orders/{stop.json()['id']}", headers=READ)).json()
    assert stopped["status"] == "filled"
    assert stopped["triggered_at"] is not None
    assert stopped["reason"].startswith("trailing_stop triggered: bid 101.50 <= stop_price 102.00")
    assert dec(stopped["average_price"]) <= dec("102.00")
    canceled = (await client.get(f"/v1/orders/{take.json()['id']}", headers=READ)).json()
    assert canceled["status"] == "canceled"
    assert canceled["reason"].startswith("oco:")
    portfolio = (await client.get("/v1/portfolio", headers=READ)).json()
    assert [p["quantity"] for p in portfolio["positions"] if p["symbol"] == "BTC-USD"] == ["0"]


async def test_a_protective_order_missing_its_trigger_is_refused_naming_the_field(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await quote(client, clock, "100.00", "100.10")
    body = {"client_order_id": "s1", "symbol": "BTC-USD", "side": "sell", "type": "stop", "quantity": "1"}
    refused = await client.post("/v1/orders", json=body, headers=AGENT)
    assert refused.status_code == 422
    assert "stop_price: required for stop orders" in refused.text
    naked = await client.post("/v1/orders", json={**body, "stop_price": "95.00"}, headers=AGENT)
    assert naked.status_code == 422
    assert naked.json()["rule"] == "reduce_only"
    assert (await client.get("/v1/orders", headers=READ)).json() == []
