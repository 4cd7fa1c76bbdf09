"""Brackets through the API, on Postgres and Redis: an entry with ``attached`` legs gets a
stop and a take-profit in one OCO group when it fills, sized to what it filled (partial
fills included), priced from its average fill price and rounded to the tick; the first leg
to fill cancels the other; a repeat of the entry is answered, not attached again; a
malformed bracket gets a 422 naming its field."""

from __future__ import annotations

from typing import Any

import httpx

from tests.trader_api.support import AGENT, READ, ManualClock, dec, send_ticks, tick


async def quote(client: httpx.AsyncClient, clock: ManualClock, bid: str, ask: str, size: str = "100") -> None:
    clock.advance(1)
    await send_ticks(client, tick("BTC-USD", bid, ask, ts=clock.now, size=size))


async def orders_of(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    """Every order by client_order_id."""
    return {o["client_order_id"]: o for o in (await client.get("/v1/orders", headers=READ)).json()}


def entry_body(client_order_id: str, **fields: Any) -> dict[str, Any]:
    return {"client_order_id": client_order_id, "symbol": "BTC-USD", "side": "buy", **fields}


async def test_a_partially_filled_entry_is_protected_for_what_it_filled_then_stopped_out(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await quote(client, clock, "100.00", "100.10")
    body = entry_body(
        "entry",
        type="limit",
        quantity="3",
        limit_price="99.90",
        attached={"stop_bps": "100", "take_profit_bps": "250"},
    )
    entry = (await client.post("/v1/orders", json=body, headers=AGENT)).json()
    assert entry["status"] == "new"
    assert entry["attached"] == {
        "stop_price": None,
        "stop_bps": "100",
        "trail_amount": None,
        "trail_bps": None,
        "take_profit_price": None,
        "take_profit_bps": "250",
    }
    assert list(await orders_of(client)) == ["entry"]  # nothing filled, nothing attached

    await quote(client, clock, "99.80", "99.90", size="1")  # one of three fills, at 99.90
    stop_id, take_id = f"bracket/{entry['id']}/stop", f"bracket/{entry['id']}/take_profit"
    orders = await orders_of(client)
    assert orders["entry"]["status"] == "partially_filled"
    stop, take = orders[stop_id], orders[take_id]
    # 99.90 x (1 - 1%) = 98.901, up to the tick (toward the entry): the loss is at most 100 bps.
    assert (stop["type"], stop["side"], stop["stop_price"], stop["quantity"]) == (
        "stop",
        "sell",
        "98.91",
        "1",
    )
    # 99.90 x (1 + 2.5%) = 102.3975, up to the tick (away from the entry).
    assert (take["type"], take["side"], take["stop_price"], take["quantity"]) == (
        "take_profit",
        "sell",
        "102.40",
        "1",
    )
    assert stop["oco_group"] == take["oco_group"] == f"bracket-{entry['id']}"
    assert stop["parent_id"] == take["parent_id"] == entry["id"]

    await quote(client, clock, "99.80", "99.90", size="2")  # the rest fills: the legs grow
    orders = await orders_of(client)
    assert orders["entry"]["status"] == "filled"
    assert (orders[stop_id]["quantity"], orders[take_id]["quantity"]) == ("3", "3")
    assert orders[stop_id]["id"] == stop["id"]  # the same legs, not a second pair

    await quote(client, clock, "98.90", "99.00")  # through the stop
    orders = await orders_of(client)
    stopped, canceled = orders[stop_id], orders[take_id]
    assert stopped["status"] == "filled"
    assert stopped["reason"].startswith("stop triggered: bid 98.90 <= stop_price 98.91")
    assert dec(stopped["average_price"]) <= dec("98.91")
    assert (canceled["status"], canceled["reason"].startswith("oco:")) == ("canceled", True)
    positions = (await client.get("/v1/portfolio", headers=READ)).json()["positions"]
    assert [p["quantity"] for p in positions if p["symbol"] == "BTC-USD"] == ["0"]


async def test_a_take_profit_fill_cancels_the_trailing_stop_and_the_repeat_attaches_nothing(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await quote(client, clock, "100.00", "100.10")
    body = entry_body(
        "tp-entry",
        type="market",
        quantity="2",
        attached={"trail_bps": "50", "take_profit_price": "101.00"},
    )
    first = await client.post("/v1/orders", json=body, headers=AGENT)
    again = await client.post("/v1/orders", json=body, headers=AGENT)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    changed = await client.post("/v1/orders", json={**body, "attached": {"trail_bps": "60"}}, headers=AGENT)
    assert changed.status_code == 409
    orders = await orders_of(client)
    assert sorted(orders) == sorted(
        ["tp-entry", f"bracket/{first.json()['id']}/stop", f"bracket/{first.json()['id']}/take_profit"]
    )
    trail = orders[f"bracket/{first.json()['id']}/stop"]
    # The bid 100.00 less 50 bps, down to the tick.
    assert (trail["type"], trail["stop_price"], trail["trail_bps"], trail["quantity"]) == (
        "trailing_stop",
        "99.50",
        "50",
        "2",
    )

    await quote(client, clock, "101.00", "101.10")  # the take-profit's target
    orders = await orders_of(client)
    take = orders[f"bracket/{first.json()['id']}/take_profit"]
    assert (take["status"], take["filled_quantity"]) == ("filled", "2")
    assert dec(take["average_price"]) >= dec("101.00")
    assert orders[f"bracket/{first.json()['id']}/stop"]["status"] == "canceled"
    positions = (await client.get("/v1/portfolio", headers=READ)).json()["positions"]
    assert [p["quantity"] for p in positions if p["symbol"] == "BTC-USD"] == ["0"]


async def test_a_malformed_bracket_is_refused_naming_the_field(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await quote(client, clock, "100.00", "100.10")
    market = entry_body("bad", type="market", quantity="1")
    for attached, extra, words in (
        ({"stop_bps": "100", "trail_bps": "50"}, {}, "attached.trail_bps: one stop leg only"),
        ({}, {}, "attached: needs a stop leg, a take-profit leg, or both"),
        ({"stop_bps": "100"}, {"oco_group": "g"}, "attached: a bracket is its own OCO group"),
        ({"take_profit_bps": "0"}, {}, "take_profit_bps"),
        ({"stop_bps": "10000"}, {}, "stop_bps"),
        (
            {"take_profit_price": "101.005"},
            {},
            '"loc":["body","attached","take_profit_price"],"msg":"must be a multiple of the tick size',
        ),
    ):
        refused = await client.post(
            "/v1/orders", json={**market, **extra, "attached": attached}, headers=AGENT
        )
        assert refused.status_code == 422, (attached, refused.text)
        assert words in refused.text, (attached, refused.text)
    stop = {"client_order_id": "s", "symbol": "BTC-USD", "side": "sell", "type": "stop", "quantity": "1"}
    refused = await client.post(
        "/v1/orders", json={**stop, "stop_price": "95.00", "attached": {"stop_bps": "1"}}, headers=AGENT
    )
    assert refused.status_code == 422
    assert "attached: only market and limit orders attach legs" in refused.text
    assert await orders_of(client) == {}
