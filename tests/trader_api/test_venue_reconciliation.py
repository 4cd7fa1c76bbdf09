"""Reconciliation of the ccxt venue with the exchange, at start: what happened at the exchange
while no Sapphire was running is corrected from the exchange's truth, and reported (a log
line, a Prometheus counter, a message on the bus); beyond a tolerance the risk state moves.
Also: wrong signatures fail as Binance fails them, and the venue's secret never shows."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import pytest
import redis.asyncio
from pydantic import SecretStr

from sapphire.trader_api.services import exchange
from sapphire.trader_api.settings import TraderApiSettings
from tests.support import metrics
from tests.support.fake_binance import API_KEY, SECRET, running_fake_binance
from tests.support.processes import observe
from tests.trader_api import support
from tests.trader_api.support import ManualClock
from tests.trader_api.venue_harness import WITHIN, Venue, on_fake_binance, overrides


@pytest.fixture
async def venue(settings: TraderApiSettings, clock: ManualClock) -> AsyncIterator[Venue]:
    async with on_fake_binance(settings, clock) as harness:
        yield harness


async def differences(venue: Venue, kind: str) -> float:
    text = (await venue.client.get("/metrics")).text
    return metrics.sample_sum(text, "sapphire_venue_reconciliation_differences_total", {"kind": kind})


async def risk_of(venue: Venue, state: str) -> dict[str, Any] | None:
    risk = await venue.risk()
    return risk if risk["state"] == state else None


async def test_a_restart_books_missed_fills_and_halts_on_a_foreign_order(
    venue: Venue, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = venue.fake
    assert fake is not None
    response = await venue.submit(venue_limit("recon-1"))
    order = await venue.resting(response.json()["id"])
    assert (await venue.risk())["state"] == "ACTIVE"  # nothing to reconcile at the first start

    await venue.stop()
    resting = fake.by_client_id(uuid.UUID(order["id"]).hex)
    assert resting is not None
    fake.trade(resting, Decimal("0.003"))  # filled while Sapphire was down
    foreign = fake.place_foreign(
        "BTCUSDT", "SELL", Decimal("0.5"), Decimal("70000"), "by-hand-on-the-website"
    )
    listener = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    pubsub = listener.pubsub()
    await pubsub.subscribe(f"{redis_prefix}venue")
    caplog.set_level(logging.WARNING, logger="sapphire.trader_api.services.ccxt_venue")
    await venue.start()

    after = await venue.settled(order["id"], "partially_filled", "0.003")
    halted = await observe(lambda: risk_of(venue, "HALTED"), within=WITHIN, what="risk HALTED")
    assert "foreign_order" in halted["reason"]
    assert str(foreign.order_id) in halted["reason"]
    assert await venue.position() == Decimal("0.003")
    assert await differences(venue, "missed_fill") == 1
    assert await differences(venue, "foreign_order") == 1
    message = None
    async with asyncio.timeout(WITHIN):
        while message is None:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
    report = json.loads(message["data"])
    assert {d["kind"] for d in report["differences"]} >= {"missed_fill", "foreign_order"}
    logged = [r.getMessage() for r in caplog.records if "venue reconciliation" in r.getMessage()]
    assert any("foreign_order" in line for line in logged)
    # HALTED cancels what the engine works at the exchange: the cancel goes to the exchange too.
    await venue.settled(order["id"], "canceled", "0.003")
    assert resting.status == "CANCELED"
    assert foreign.status == "NEW"  # not ours: reported, left to its owner
    print("\nreconciliation after a restart:")
    for difference in report["differences"]:
        print(f"  {difference['kind']:<13} worth {difference['notional']:>12}  {difference['detail']}")
    print(f"  risk: {halted['state']} ({halted['reason'][:160]})")
    print(f"  order {order['id']}: {after['status']} {after['filled_quantity']}, then canceled by the halt")
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await listener.aclose()


async def test_a_balance_difference_beyond_the_tolerance_reduces(venue: Venue) -> None:
    fake = venue.fake
    assert fake is not None
    await venue.stop()
    fake.balances["BTC"] += Decimal("0.01")  # a deposit: worth about 650 USDT, above 10, below 1000
    await venue.start()
    reducing = await observe(lambda: risk_of(venue, "REDUCING"), within=WITHIN, what="risk REDUCING")
    assert "balance" in reducing["reason"]
    assert "the exchange holds 0.01" in reducing["reason"]
    print(f"\nbalance difference: risk {reducing['state']} ({reducing['reason']})")


async def test_an_order_filled_while_its_answer_is_on_its_way_is_no_difference(
    settings: TraderApiSettings, clock: ManualClock
) -> None:
    """The start-up reconciliation runs while the first orders flow. An order the exchange
    has filled, whose answer the engine has not had yet, is the engine's (not a foreign
    trade), and the balance it moved is no difference: it once read as a 390 USDT balance
    difference and set risk REDUCING on a live account."""
    async with running_fake_binance() as fake, contextlib.AsyncExitStack() as stack:
        patient = overrides(settings, fake) | {"venue_timeout_seconds": 60.0}  # the held answer stays held
        harness = Venue("ccxt", settings.model_copy(update=patient), clock, fake)
        await harness.start()
        stack.push_async_callback(harness.stop)
        await harness.quote()
        assert await harness.link.reconcile() == []  # nothing differs at rest

        fake.hold_next_answer = True
        response = await harness.submit(support.order("in-flight-1", "BTC-USD", "buy", "0.006"))
        assert response.status_code == 201, response.text
        order_id = response.json()["id"]
        placed = await observe(
            lambda: fake.by_client_id(uuid.UUID(order_id).hex),
            within=WITHIN,
            what="the order at the exchange",
        )
        assert placed.status == "FILLED"
        assert fake.balances["BTC"] == Decimal("0.006")  # the exchange's balance has moved...
        assert (await harness.order(order_id))["status"] == "pending_new"  # ...the engine has not heard
        assert await harness.position() == 0

        found = await harness.link.reconcile()
        assert found == [], found
        assert (await harness.risk())["state"] == "ACTIVE"

        fake.released.set()  # the answer arrives
        await harness.settled(order_id, "filled", "0.006")
        assert await harness.link.reconcile() == []
        assert (await harness.risk())["state"] == "ACTIVE"


async def test_a_busy_accounts_newest_trade_in_flight_is_no_difference(
    settings: TraderApiSettings, clock: ManualClock
) -> None:
    """More trades than the exchange answers in one page: the newest, in flight, is on the
    last page. Read as one page, it was missed, and its balance read as a difference."""
    async with running_fake_binance() as fake, contextlib.AsyncExitStack() as stack:
        patient = overrides(settings, fake) | {"venue_timeout_seconds": 60.0}
        harness = Venue("ccxt", settings.model_copy(update=patient), clock, fake)
        await harness.start()
        stack.push_async_callback(harness.stop)
        await harness.quote()
        fake.trade_page_limit = 2
        for n in range(5):  # five trades: three pages of two
            response = await harness.submit(support.order(f"busy-{n}", "BTC-USD", "buy", "0.001"))
            assert response.status_code == 201, response.text
            await harness.settled(response.json()["id"], "filled", "0.001")
        assert len(fake.trades) == 5
        assert await harness.link.reconcile() == []

        fake.hold_next_answer = True
        response = await harness.submit(support.order("busy-in-flight", "BTC-USD", "buy", "0.002"))
        assert response.status_code == 201, response.text
        order_id = response.json()["id"]
        await observe(
            lambda: fake.by_client_id(uuid.UUID(order_id).hex),
            within=WITHIN,
            what="the order at the exchange",
        )
        assert fake.balances["BTC"] == Decimal("0.007")  # the exchange holds the sixth trade...
        assert await harness.position() == Decimal("0.005")  # ...the engine has not heard of it
        found = await harness.link.reconcile()
        assert found == [], found
        assert fake.requests.count(("GET", "/api/v3/myTrades")) >= 3 * 2 * 2  # pages, twice, two reads
        assert (await harness.risk())["state"] == "ACTIVE"
        fake.released.set()
        await harness.settled(order_id, "filled", "0.002")


async def test_a_new_live_account_starts_with_the_exchanges_cash_and_a_cash_difference_reduces(
    settings: TraderApiSettings, clock: ManualClock
) -> None:
    async with running_fake_binance() as fake, contextlib.AsyncExitStack() as stack:
        fake.balances["USDT"] = Decimal("25000.5")
        chosen = settings.model_copy(update=overrides(settings, fake) | {"initial_cash": Decimal("1000000")})
        harness = Venue("ccxt", chosen, clock, fake)
        await harness.start()
        stack.push_async_callback(harness.stop)
        await harness.quote()
        portfolio = (await harness.client.get("/v1/portfolio", headers=support.AGENT)).json()
        assert Decimal(portfolio["cash"]) == Decimal("25000.5")  # the exchange's, not initial_cash
        assert await harness.link.reconcile() == []

        await harness.stop()
        fake.balances["USDT"] -= Decimal("400")  # withdrawn by hand while Sapphire was down
        await harness.start()
        reducing = await observe(lambda: risk_of(harness, "REDUCING"), within=WITHIN, what="risk REDUCING")
        assert "cash: USDT: the exchange holds 24600.5" in reducing["reason"], reducing["reason"]
        portfolio = (await harness.client.get("/v1/portfolio", headers=support.AGENT)).json()
        assert Decimal(portfolio["cash"]) == Decimal("25000.5")  # seeded once, on the empty journal only
        print(f"\ncash difference: risk {reducing['state']} ({reducing['reason']})")


async def test_a_wrong_signature_fails_as_on_binance_and_the_secret_never_shows(
    settings: TraderApiSettings,
) -> None:
    async with running_fake_binance() as fake:
        wrong = settings.model_copy(
            update={
                "venue": "ccxt",
                "venue_api_key": SecretStr(API_KEY),
                "venue_api_secret": SecretStr("not-the-secret-" + SECRET[:8]),
                "ccxt_api_origin": fake.url,
            }
        )
        client = exchange.build(wrong, "binance", setting="venue_exchange", private=True)
        try:
            with pytest.raises(ccxt.AuthenticationError) as failure:
                await client.fetch_balance()
        finally:
            await client.close()
    assert '"code": -1022' in str(failure.value)
    assert fake.signature_failures == 1
    secret = wrong.venue_api_secret
    assert secret is not None
    text = exchange.scrub(f"{failure.value} {secret.get_secret_value()}", wrong)
    assert secret.get_secret_value() not in text
    assert "***" in text
    shown = json.dumps(wrong.redacted())
    assert secret.get_secret_value() not in shown
    assert API_KEY not in shown
    assert wrong.redacted()["venue_api_secret"] == "***"


def venue_limit(client_order_id: str) -> dict[str, Any]:
    return support.order(client_order_id, "BTC-USD", "buy", "0.01", limit_price="64000.00")
