"""Pre-trade risk rules, the loss monitors that halt trading, and the admin controls."""

from __future__ import annotations

import httpx
import pytest

from tests.trader_api.support import ADMIN, AGENT, READ, ManualClock, order, send_ticks, tick


@pytest.fixture
async def market(client: httpx.AsyncClient, clock: ManualClock) -> httpx.AsyncClient:
    await send_ticks(client, tick("BTC-USD", "100.00", "100.10", ts=clock.now))
    return client


async def refusal(client: httpx.AsyncClient, body: dict[str, object]) -> tuple[int, str, str]:
    response = await client.post("/v1/orders", json=body, headers=AGENT)
    payload = response.json()
    return response.status_code, payload.get("rule", ""), payload.get("detail", "")


async def set_limits(client: httpx.AsyncClient, **limits: str) -> None:
    response = await client.put("/v1/risk/limits", json=limits, headers=ADMIN)
    assert response.status_code == 200, response.text


async def test_order_notional_above_the_limit_is_refused_naming_the_rule(market: httpx.AsyncClient) -> None:
    await set_limits(market, max_order_notional="500")
    status, rule, detail = await refusal(market, order("big", quantity="5"))
    assert (status, rule) == (422, "max_order_notional")
    assert "max_order_notional" in detail
    assert (await market.get("/v1/orders", headers=READ)).json() == []


async def test_position_limit_counts_open_orders_on_the_same_side(market: httpx.AsyncClient) -> None:
    await set_limits(market, max_position_notional="1000")
    first = await market.post(
        "/v1/orders", json=order("p1", quantity="6", limit_price="99.00"), headers=AGENT
    )
    assert first.status_code == 201
    status, rule, _ = await refusal(market, order("p2", quantity="5", limit_price="99.00"))
    assert (status, rule) == (422, "max_position_notional")


async def test_gross_exposure_spans_instruments(market: httpx.AsyncClient, clock: ManualClock) -> None:
    await send_ticks(market, tick("ETH-USD", "50.00", "50.02", ts=clock.now))
    await set_limits(market, max_gross_exposure="800")
    assert (await market.post("/v1/orders", json=order("g1", quantity="5"), headers=AGENT)).status_code == 201
    status, rule, _ = await refusal(market, order("g2", "ETH-USD", quantity="6"))
    assert (status, rule) == (422, "max_gross_exposure")


async def test_limit_price_outside_the_collar_is_refused(market: httpx.AsyncClient) -> None:
    await set_limits(market, price_collar_bps="100")
    status, rule, _ = await refusal(market, order("c1", limit_price="90.00"))
    assert (status, rule) == (422, "price_collar")


async def test_a_stale_quote_refuses_orders_and_is_flagged(
    market: httpx.AsyncClient, clock: ManualClock
) -> None:
    clock.advance(11)
    quote = (await market.get("/v1/quotes/BTC-USD", headers=READ)).json()
    assert quote["stale"] is True
    status, rule, detail = await refusal(market, order("s1"))
    assert (status, rule) == (422, "stale_quote")
    assert "stale_quote_seconds" in detail


async def test_no_quote_at_all_refuses_as_stale(client: httpx.AsyncClient) -> None:
    status, rule, _ = await refusal(client, order("n1", "AAPL"))
    assert (status, rule) == (422, "stale_quote")


async def test_halted_refuses_everything_and_cancels_resting_orders(market: httpx.AsyncClient) -> None:
    resting = (await market.post("/v1/orders", json=order("r1", limit_price="99.00"), headers=AGENT)).json()
    halted = await market.put(
        "/v1/risk/state", json={"state": "HALTED", "reason": "desk closed"}, headers=ADMIN
    )
    assert halted.json()["state"] == "HALTED"
    assert (await market.get(f"/v1/orders/{resting['id']}", headers=READ)).json()["status"] == "canceled"
    status, rule, _ = await refusal(market, order("h1"))
    assert (status, rule) == (422, "risk_state")


async def test_reducing_accepts_only_orders_that_shrink_a_position(market: httpx.AsyncClient) -> None:
    await market.post("/v1/orders", json=order("long", quantity="2"), headers=AGENT)
    await market.put("/v1/risk/state", json={"state": "REDUCING", "reason": "wind down"}, headers=ADMIN)
    assert (await refusal(market, order("more", quantity="1")))[1] == "risk_state"
    assert (await refusal(market, order("flip", side="sell", quantity="3")))[1] == "risk_state"
    shrink = await market.post("/v1/orders", json=order("less", side="sell", quantity="1"), headers=AGENT)
    assert shrink.status_code == 201


async def test_daily_loss_halts_trading_automatically(market: httpx.AsyncClient, clock: ManualClock) -> None:
    await set_limits(market, max_daily_loss="100")
    await market.post("/v1/orders", json=order("l1", quantity="10"), headers=AGENT)
    await send_ticks(market, tick("BTC-USD", "89.00", "89.10", ts=clock.now))
    state = (await market.get("/v1/risk", headers=READ)).json()
    assert state["state"] == "HALTED"
    assert state["reason"].startswith("auto: max_daily_loss")


async def test_drawdown_halts_and_resuming_rebases_the_monitors(
    market: httpx.AsyncClient, clock: ManualClock
) -> None:
    await set_limits(
        market, max_drawdown="0.0001", max_position_notional="100000", max_order_notional="100000"
    )
    await market.post("/v1/orders", json=order("d1", quantity="100"), headers=AGENT)
    await send_ticks(market, tick("BTC-USD", "98.00", "98.10", ts=clock.now))
    assert (await market.get("/v1/risk", headers=READ)).json()["state"] == "HALTED"
    resumed = await market.put(
        "/v1/risk/state", json={"state": "ACTIVE", "reason": "reviewed"}, headers=ADMIN
    )
    assert resumed.json()["state"] == "ACTIVE"
    await send_ticks(market, tick("BTC-USD", "98.00", "98.10", ts=clock.now))
    assert (await market.get("/v1/risk", headers=READ)).json()["state"] == "ACTIVE"


async def test_risk_control_needs_admin(market: httpx.AsyncClient) -> None:
    for token in (AGENT, READ):
        response = await market.put("/v1/risk/state", json={"state": "HALTED", "reason": "x"}, headers=token)
        assert response.status_code == 403
        assert (await market.put("/v1/risk/limits", json={}, headers=token)).status_code == 403
    assert (await market.get("/v1/risk", headers=READ)).json()["state"] == "ACTIVE"


async def test_limits_update_validates_each_field(market: httpx.AsyncClient) -> None:
    response = await market.put("/v1/risk/limits", json={"max_drawdown": "1.5"}, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "max_drawdown"]
