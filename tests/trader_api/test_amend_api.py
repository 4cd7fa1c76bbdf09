"""Amend (replace) of an open order through the API, on Postgres and Redis: the same order
takes new prices or quantity; a replace has submit's idempotency (same id and body: the same
answer, also after a restart; another body: 409; one index with submits); an amended limit
that crosses fills; an amended stop fires at its new trigger; what an order cannot take is a
422 naming the field."""

from __future__ import annotations

import httpx

from sapphire.trader_api.settings import TraderApiSettings
from tests.trader_api.support import AGENT, READ, ManualClock, dec, order, running_client, send_ticks, tick


async def quote(client: httpx.AsyncClient, clock: ManualClock, bid: str, ask: str) -> None:
    clock.advance(1)
    await send_ticks(client, tick("BTC-USD", bid, ask, ts=clock.now, size="100"))


async def test_a_resting_limit_is_amended_in_place_once_per_replace_id_even_after_a_restart(
    settings: TraderApiSettings, clock: ManualClock
) -> None:
    async with running_client(settings, clock) as client:
        await quote(client, clock, "100.00", "100.10")
        resting = (
            await client.post(
                "/v1/orders", json=order("bid", quantity="2", limit_price="99.00"), headers=AGENT
            )
        ).json()
        path = f"/v1/orders/{resting['id']}/replace"
        body = {"client_order_id": "r1", "quantity": "3", "limit_price": "99.50"}
        unauthenticated = await client.post(path, json=body)
        assert unauthenticated.status_code == 401
        amended = await client.post(path, json=body, headers=AGENT)
        assert amended.status_code == 201, amended.text
        got = amended.json()
        assert (got["id"], got["quantity"], got["limit_price"], got["status"]) == (
            resting["id"],
            "3",
            "99.50",
            "new",
        )
        assert got["reason"] == "amended by r1"
        again = await client.post(path, json=body, headers=AGENT)
        assert (again.status_code, again.json()) == (200, got)
        other = await client.post(path, json={**body, "quantity": "4"}, headers=AGENT)
        assert other.status_code == 409
        as_submit = await client.post("/v1/orders", json=order("r1", quantity="1"), headers=AGENT)
        assert as_submit.status_code == 409  # one index for submits and replaces

    async with running_client(settings, clock) as client:  # a new writer, loaded from the tables
        path = f"/v1/orders/{resting['id']}/replace"
        after = await client.post(path, json=body, headers=AGENT)
        assert (after.status_code, after.json()["quantity"], after.json()["limit_price"]) == (
            200,
            "3",
            "99.50",
        )
        assert (await client.post(path, json={**body, "quantity": "4"}, headers=AGENT)).status_code == 409
        await quote(client, clock, "100.00", "100.10")
        crossing = await client.post(
            path, json={"client_order_id": "r2", "limit_price": "100.10"}, headers=AGENT
        )
        assert crossing.status_code == 201, crossing.text
        filled = crossing.json()
        assert (filled["status"], filled["filled_quantity"]) == ("filled", "3")
        assert dec(filled["average_price"]) == dec("100.10")
        closed = await client.post(path, json={"client_order_id": "r3", "quantity": "5"}, headers=AGENT)
        assert closed.status_code == 409
        assert "only open orders can be amended" in closed.text
        orders = (await client.get("/v1/orders", headers=READ)).json()
        assert [o["id"] for o in orders] == [resting["id"]]  # amended, never a second order


async def test_an_amended_stop_fires_at_its_new_trigger_and_bad_fields_are_named(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await quote(client, clock, "100.00", "100.10")
    assert (
        await client.post("/v1/orders", json=order("long", quantity="2"), headers=AGENT)
    ).status_code == 201
    stop_body = {
        "client_order_id": "stop",
        "symbol": "BTC-USD",
        "side": "sell",
        "type": "stop",
        "quantity": "2",
    }
    stop = (await client.post("/v1/orders", json={**stop_body, "stop_price": "95.00"}, headers=AGENT)).json()
    path = f"/v1/orders/{stop['id']}/replace"
    for body, words in (
        (
            {"client_order_id": "x1", "limit_price": "99.00"},
            '"loc":["body","limit_price"],"msg":"a stop order has no limit_price',
        ),
        (
            {"client_order_id": "x2", "trail_bps": "10"},
            '"loc":["body","trail_bps"],"msg":"the order does not trail by trail_bps',
        ),
        (
            {"client_order_id": "x3", "stop_price": "98.005"},
            '"loc":["body","stop_price"],"msg":"must be a multiple of the tick size',
        ),
        ({"client_order_id": "x4", "quantity": "3"}, "reduce_only"),
        ({"client_order_id": "x5"}, "a replace changes at least one of"),
    ):
        refused = await client.post(path, json=body, headers=AGENT)
        assert refused.status_code == 422, (body, refused.text)
        assert words in refused.text, (body, refused.text)
    moved = await client.post(path, json={"client_order_id": "up", "stop_price": "98.00"}, headers=AGENT)
    assert (moved.status_code, moved.json()["stop_price"], moved.json()["status"]) == (201, "98.00", "new")

    await quote(client, clock, "97.90", "98.00")  # above the old stop, through the new one
    fired = (await client.get(f"/v1/orders/{stop['id']}", headers=READ)).json()
    assert fired["status"] == "filled"
    assert fired["reason"].startswith("stop triggered: bid 97.90 <= stop_price 98.00")
