"""Orders on the paper venue: fills, resting limits, idempotency, cancels, portfolio."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from sapphire.trader_api import errors
from sapphire.trader_api.app import create_app
from sapphire.trader_api.core import domain, records
from sapphire.trader_api.services.writer import Role
from sapphire.trader_api.settings import TraderApiSettings
from tests.support import processes
from tests.trader_api.support import (
    ADMIN,
    AGENT,
    READ,
    ManualClock,
    dec,
    make_settings,
    order,
    running_client,
    send_ticks,
    tick,
)


@pytest.fixture
async def market(client: httpx.AsyncClient, clock: ManualClock) -> httpx.AsyncClient:
    await send_ticks(
        client,
        tick("BTC-USD", "100.00", "100.10", ts=clock.now),
        tick("AAPL", "190.00", "190.02", ts=clock.now),
    )
    return client


async def test_market_buy_fills_at_the_ask_and_pays_the_fee(market: httpx.AsyncClient) -> None:
    response = await market.post("/v1/orders", json=order("b1", quantity="2", agent="exec-1"), headers=AGENT)
    assert response.status_code == 201, response.text
    placed = response.json()
    assert placed["status"] == "filled"
    assert placed["filled_quantity"] == "2"
    assert dec(placed["average_price"]) == Decimal("100.10")
    assert dec(placed["fees"]) == Decimal("0.2002")  # 10 bps of 200.20
    portfolio = (await market.get("/v1/portfolio", headers=READ)).json()
    assert dec(portfolio["cash"]) == Decimal("1000000") - Decimal("200.20") - Decimal("0.2002")
    [position] = portfolio["positions"]
    assert position["symbol"] == "BTC-USD"
    assert dec(position["quantity"]) == 2
    assert dec(position["average_price"]) == Decimal("100.10")
    assert dec(position["mark"]) == Decimal("100.10")


async def test_market_sell_fills_at_the_bid_minus_slippage(
    trader_database_url: str, redis_url: str, redis_prefix: str, clock: ManualClock
) -> None:
    settings = make_settings(trader_database_url, redis_url, redis_prefix, slippage_bps="10")
    async with running_client(settings, clock) as client:
        await send_ticks(client, tick("BTC-USD", "100.00", "100.10", ts=clock.now))
        sold = (await client.post("/v1/orders", json=order("s1", side="sell"), headers=AGENT)).json()
    # 100.00 x (1 - 0.001) = 99.90, rounded down to the tick.
    assert dec(sold["average_price"]) == Decimal("99.90")


async def test_resting_limit_fills_partially_then_fully_when_the_market_crosses(
    market: httpx.AsyncClient, clock: ManualClock
) -> None:
    placed = (
        await market.post("/v1/orders", json=order("l1", quantity="3", limit_price="99.50"), headers=AGENT)
    ).json()
    assert placed["status"] == "new"
    await send_ticks(market, tick("BTC-USD", "99.40", "99.50", ts=clock.now, size="1.25"))
    partial = (await market.get(f"/v1/orders/{placed['id']}", headers=READ)).json()
    assert partial["status"] == "partially_filled"
    assert dec(partial["filled_quantity"]) == Decimal("1.25")
    await send_ticks(market, tick("BTC-USD", "99.30", "99.40", ts=clock.now, size="5"))
    done = (await market.get(f"/v1/orders/{placed['id']}", headers=READ)).json()
    assert done["status"] == "filled"
    assert dec(done["average_price"]) == Decimal("99.50")  # resting orders fill at their limit
    fills = (await market.get("/v1/fills", params={"order_id": placed["id"]}, headers=READ)).json()
    assert sorted(dec(f["quantity"]) for f in fills) == [Decimal("1.25"), Decimal("1.75")]
    assert {f["liquidity"] for f in fills} == {"maker"}


async def test_marketable_limit_fills_at_the_touch_and_ioc_cancels_otherwise(
    market: httpx.AsyncClient,
) -> None:
    marketable = (
        await market.post("/v1/orders", json=order("m1", limit_price="100.50"), headers=AGENT)
    ).json()
    assert marketable["status"] == "filled"
    assert dec(marketable["average_price"]) == Decimal("100.10")
    ioc = (
        await market.post(
            "/v1/orders", json=order("i1", limit_price="99.00", time_in_force="ioc"), headers=AGENT
        )
    ).json()
    assert ioc["status"] == "canceled"
    assert "ioc" in ioc["reason"]


async def test_same_client_order_id_and_body_returns_the_same_order(market: httpx.AsyncClient) -> None:
    first = await market.post("/v1/orders", json=order("same", quantity="1.0"), headers=AGENT)
    again = await market.post("/v1/orders", json=order("same", quantity="1"), headers=AGENT)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert len((await market.get("/v1/fills", headers=READ)).json()) == 1


async def test_same_client_order_id_with_another_body_is_a_conflict(market: httpx.AsyncClient) -> None:
    await market.post("/v1/orders", json=order("dup", quantity="1"), headers=AGENT)
    response = await market.post("/v1/orders", json=order("dup", quantity="2"), headers=AGENT)
    assert response.status_code == 409
    assert "client_order_id" in response.json()["detail"]


async def test_cancel_an_open_order_then_cancel_again_is_a_conflict(market: httpx.AsyncClient) -> None:
    placed = (await market.post("/v1/orders", json=order("c1", limit_price="99.00"), headers=AGENT)).json()
    canceled = await market.post(f"/v1/orders/{placed['id']}/cancel", headers=AGENT)
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    again = await market.post(f"/v1/orders/{placed['id']}/cancel", headers=AGENT)
    assert again.status_code == 409
    missing = await market.post("/v1/orders/00000000-0000-0000-0000-000000000000/cancel", headers=AGENT)
    assert missing.status_code == 404


async def test_orders_are_listed_newest_first_and_filtered(
    market: httpx.AsyncClient, clock: ManualClock
) -> None:
    for number in range(3):
        await market.post(
            "/v1/orders", json=order(f"f{number}", limit_price="99.00", agent="a1"), headers=AGENT
        )
        clock.advance(0.5)
    await market.post("/v1/orders", json=order("g1", agent="a2"), headers=AGENT)
    listed = (await market.get("/v1/orders", params={"agent": "a1"}, headers=READ)).json()
    assert [o["client_order_id"] for o in listed] == ["f2", "f1", "f0"]
    filled = (await market.get("/v1/orders", params={"status": "filled"}, headers=READ)).json()
    assert [o["client_order_id"] for o in filled] == ["g1"]


async def test_round_trip_realizes_pnl_and_books_balance(
    market: httpx.AsyncClient, clock: ManualClock
) -> None:
    await market.post("/v1/orders", json=order("rt1", quantity="4", agent="x"), headers=AGENT)
    await send_ticks(market, tick("BTC-USD", "110.00", "110.10", ts=clock.now))
    await market.post("/v1/orders", json=order("rt2", side="sell", quantity="1.5", agent="x"), headers=AGENT)
    portfolio = (await market.get("/v1/portfolio", headers=READ)).json()
    [position] = portfolio["positions"]
    assert dec(position["realized_pnl"]) == Decimal("1.5") * (Decimal("110.00") - Decimal("100.10"))
    assert dec(position["quantity"]) == Decimal("2.5")
    assert dec(portfolio["equity"]) == dec(portfolio["cash"]) + dec(position["quantity"]) * dec(
        position["mark"]
    )
    change = dec(portfolio["equity"]) - Decimal("1000000")
    pnl = dec(portfolio["realized_pnl"]) + dec(portfolio["unrealized_pnl"]) - dec(portfolio["fees"])
    assert pnl == change
    stats = (await market.get("/v1/agents/x/stats", headers=READ)).json()
    assert dec(stats["realized_pnl"]) == dec(position["realized_pnl"])
    assert stats["orders"] == 2


async def test_admin_scope_reaches_orders_too(market: httpx.AsyncClient) -> None:
    assert (await market.post("/v1/orders", json=order("adm"), headers=ADMIN)).status_code == 201


async def test_app_factory_builds_nothing_at_import(settings: TraderApiSettings) -> None:
    app = create_app(settings)
    assert isinstance(app, FastAPI)
    assert not hasattr(app.state, "runtime")  # the lifespan opens the database, not the factory


async def test_day_orders_expire_when_their_utc_day_ends(
    market: httpx.AsyncClient, clock: ManualClock
) -> None:
    day = (
        await market.post(
            "/v1/orders", json=order("d1", limit_price="99.00", time_in_force="day"), headers=AGENT
        )
    ).json()
    gtc = (await market.post("/v1/orders", json=order("g1", limit_price="99.00"), headers=AGENT)).json()
    clock.advance(10 * 3600)  # 14:30 -> 00:30 the next day
    await send_ticks(market, tick("BTC-USD", "100.00", "100.10", ts=clock.now))
    expired = (await market.get(f"/v1/orders/{day['id']}", headers=READ)).json()
    assert (expired["status"], expired["reason"]) == ("canceled", "day order expired")
    assert (await market.get(f"/v1/orders/{gtc['id']}", headers=READ)).json()["status"] == "new"


async def test_a_batch_the_engine_fails_on_is_answered_503_and_the_writer_reloads(
    app: FastAPI, market: httpx.AsyncClient, clock: ManualClock
) -> None:
    writer = app.state.writer
    # A quote no route would let by (a naive timestamp): the engine fails on it, a bug's stand-in.
    naive = domain.Quote(
        symbol="BTC-USD",
        bid=Decimal("100.00"),
        ask=Decimal("100.10"),
        last=Decimal("100.00"),
        size=Decimal(1),
        ts=clock.now.replace(tzinfo=None),
    )
    with pytest.raises(errors.UnavailableError, match="could not persist this batch"):
        await asyncio.wait_for(writer.submit(records.ApplyTicks((naive,))), timeout=10)
    # The writer stepped down (the precondition of the reload below) ...
    assert writer.role is not Role.WRITER
    # ... and, elected again, reloads from the tables and takes orders.
    await processes.observe(
        lambda: True if writer.role is Role.WRITER else None, within=30, what="the writer elected again"
    )
    after = await market.post("/v1/orders", json=order("after"), headers=AGENT)
    assert after.status_code == 201, after.text
    listed = (await market.get("/v1/orders", headers=READ)).json()
    assert [row["client_order_id"] for row in listed] == ["after"]
