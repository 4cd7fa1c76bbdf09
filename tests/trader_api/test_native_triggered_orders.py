"""Binance spot's own protective orders, as the real ccxt client sends them: ccxt's unified
``stopLossPrice`` / ``takeProfitPrice`` on a limit order become ``STOP_LOSS_LIMIT`` /
``TAKE_PROFIT_LIMIT`` with ``stopPrice`` on the wire, and the local Binance triggers them as
Binance does (the groundwork for sending P1's protective orders natively)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt
import pytest
from pydantic import SecretStr

from sapphire.trader_api.services import exchange
from sapphire.trader_api.settings import TraderApiSettings
from tests.support.fake_binance import API_KEY, SECRET, FakeBinance, running_fake_binance


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
