"""Paper trading on live prices: the trader API's ccxt feed reads the local Binance's ticker
websocket through the real ccxt.pro client, and the paper venue fills against it (venue=paper,
feed=ccxt: the documented first step on a real market, without keys). The stream reconnects
after a drop, and once the exchange stops sending, orders are refused on the stale quote."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from sapphire.trader_api.feeds import ccxt_source
from sapphire.trader_api.settings import TraderApiSettings
from tests.support.fake_binance import FakeBinance, running_fake_binance
from tests.support.processes import observe
from tests.trader_api import support
from tests.trader_api.support import AGENT, dec

WITHIN = 15.0


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with running_fake_binance() as exchange:
        yield exchange


def paper_on(fake: FakeBinance, settings: TraderApiSettings, **changes: Any) -> TraderApiSettings:
    """The paper venue on the local Binance's live feed (the API's own ccxt feed)."""
    live_feed = {"venue": "paper", "feed": "ccxt", "feed_exchange": "binance", "ccxt_api_origin": fake.url}
    return settings.model_copy(update={**live_feed, **changes})


@pytest.fixture
async def live(settings: TraderApiSettings, fake: FakeBinance) -> AsyncIterator[httpx.AsyncClient]:
    paper_on_live = paper_on(
        fake, settings, risk=settings.risk.model_copy(update={"stale_quote_seconds": Decimal("1.5")})
    )
    async with support.running_client(paper_on_live) as client:  # the real clock: exchange timestamps
        yield client


async def quote_at(client: httpx.AsyncClient, bid: str) -> dict[str, Any] | None:
    response = await client.get("/v1/quotes/BTC-USD", headers=AGENT)
    if response.status_code != 200:
        return None
    quote: dict[str, Any] = response.json()
    return quote if dec(quote["bid"]) == dec(bid) and not quote["stale"] else None


async def market(client: httpx.AsyncClient, client_order_id: str, side: str) -> dict[str, Any]:
    response = await client.post(
        "/v1/orders", json=support.order(client_order_id, "BTC-USD", side, "0.01"), headers=AGENT
    )
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    assert order["status"] == "filled"
    return order


async def test_paper_fills_on_live_prices_and_refuses_stale_ones(
    live: httpx.AsyncClient, fake: FakeBinance
) -> None:
    first = await observe(lambda: quote_at(live, "64999.99"), within=WITHIN, what="the live BTC/USDT ticker")
    assert dec(first["ask"]) == Decimal("65000.01")
    bought = await market(live, "live-buy-1", "buy")
    assert dec(bought["average_price"]) == Decimal("65000.01")  # at the exchange's ask

    await fake.set_price("BTCUSDT", Decimal("65500.00"), Decimal("65500.02"))
    await observe(lambda: quote_at(live, "65500.00"), within=WITHIN, what="the ticker's next price")
    sold = await market(live, "live-sell-1", "sell")
    assert dec(sold["average_price"]) == Decimal("65500.00")

    portfolio = (await live.get("/v1/portfolio", headers=AGENT)).json()
    assert dec(portfolio["realized_pnl"]) == (Decimal("65500.00") - Decimal("65000.01")) * Decimal("0.01")
    fills = (await live.get("/v1/fills", headers=AGENT)).json()
    assert len(fills) == 2
    print("\npaper on live prices (ccxt.pro websocket from the local Binance):")
    for order in (bought, sold):
        print(
            f"  order {order['side']:<4} {order['quantity']} BTC-USD {order['status']}"
            f" at {order['average_price']}"
        )
    for fill in reversed(fills):
        print(
            f"  fill  {fill['side']:<4} {fill['quantity']} @ {fill['price']} fee {fill['fee']}"
            f" pnl {fill['realized_pnl']}"
        )
    print(
        f"  realized PnL {portfolio['realized_pnl']}, fees {portfolio['fees']}, equity {portfolio['equity']}"
    )

    await fake.drop_websockets()  # a network blip: the feed reconnects with backoff
    await fake.set_price("BTCUSDT", Decimal("65100.00"), Decimal("65100.02"))
    await observe(lambda: quote_at(live, "65100.00"), within=WITHIN, what="the ticker after a reconnect")

    async def stale() -> bool | None:  # the exchange goes quiet: the quote ages past 1.5 s
        quote = (await live.get("/v1/quotes/BTC-USD", headers=AGENT)).json()
        return True if quote["stale"] else None

    await observe(stale, within=WITHIN, what="the quote to go stale")
    refused = await live.post(
        "/v1/orders", json=support.order("live-buy-2", "BTC-USD", "buy", "0.01"), headers=AGENT
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["rule"] == "stale_quote"
    print(f"  after the exchange went quiet: {refused.status_code} {refused.json()['detail']}")


def test_a_ticker_becomes_a_quote_with_the_exchange_timestamp() -> None:
    ticker = {
        "bid": "100.10",
        "ask": "100.20",
        "last": "100.15",
        "timestamp": 1_700_000_000_000,
        "info": {"Q": "0.25"},
    }
    quote = ccxt_source.quote_of(ticker, "BTC-USD")
    assert quote is not None
    assert (quote.bid, quote.ask, quote.last, quote.size) == (
        Decimal("100.10"),
        Decimal("100.20"),
        Decimal("100.15"),
        Decimal("0.25"),
    )
    assert quote.ts.timestamp() == 1_700_000_000
    assert ccxt_source.quote_of({**ticker, "bid": None}, "BTC-USD") is None  # one-sided: no quote


async def test_a_feed_that_cannot_start_is_told_by_readyz_and_logged(
    settings: TraderApiSettings, fake: FakeBinance, caplog: pytest.LogCaptureFixture
) -> None:
    # BTC-USD maps to BTC/EUR, which the local Binance does not list: nothing to stream.
    nothing_listed = paper_on(fake, settings, ccxt_quote_currencies={"USD": "EUR"})
    async with support.running_client(nothing_listed) as client:

        async def not_ready() -> dict[str, Any] | None:
            response = await client.get("/readyz")
            body: dict[str, Any] = response.json()
            return body if response.status_code == 503 else None

        answer = await observe(not_ready, within=WITHIN, what="/readyz telling the feed stopped")
        assert (answer["database"], answer["bus"]) == ("ok", "ok")
        assert answer["feed"] == (
            "error: the market feed stopped: NoMarketsError: "
            "feed_exchange: binance lists none of the configured instruments"
        )
    assert "the market feed stopped, no quotes will arrive" in caplog.text  # and the shutdown was clean
