"""Live market data through ccxt: batches of :class:`domain.Quote` from a real exchange.

Where ccxt.pro has a websocket ticker for the exchange (``watch_ticker``), each symbol is
watched on its own stream; otherwise every ticker is polled over REST (``fetch_ticker``)
each ``feed_poll_seconds``. A stream or poll that fails (the network, the exchange) is
retried with backoff, doubling up to :data:`BACKOFF_MAX_SECONDS`; ccxt.pro opens a new
connection on the next watch. Public data only: no keys.

Quotes keep the **exchange's** timestamp, so the risk rules' stale-quote check
(``risk.stale_quote_seconds``) measures how old the market data really is: when the feed
stops, orders are refused once the last quote is older than that. ``size`` is the last
trade's quantity where the exchange reports it, else the size at the touch.

Symbols map through :class:`core.symbols.SymbolMap` (``BTC-USD`` <-> ``BTC/USDT``); a
configured instrument the exchange does not list is logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import ccxt.async_support as ccxt

from sapphire.trader_api.core import domain, symbols
from sapphire.trader_api.services import exchange
from sapphire.trader_api.settings import CcxtMarketDataSettings

log = logging.getLogger(__name__)

BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
LAST_TRADE_SIZE = ("Q", "lastQty", "last_qty")
"""Where exchanges put the last trade's quantity in a ticker's raw ``info`` (Binance: ``Q``, ``lastQty``)."""


class NoMarketsError(ValueError):
    """The exchange lists none of the wanted symbols: the feed has nothing to stream."""


def quote_of(ticker: dict[str, Any], symbol: str) -> domain.Quote | None:
    """A ccxt ticker as a Quote of Sapphire's ``symbol``; ``None`` without a two-sided book."""
    bid, ask = exchange.decimal(ticker.get("bid")), exchange.decimal(ticker.get("ask"))
    if bid <= 0 or ask <= 0 or ask < bid:
        return None
    info = ticker.get("info") or {}
    size = next((exchange.decimal(info.get(key)) for key in LAST_TRADE_SIZE if info.get(key)), None)
    if size is None:
        size = min(exchange.decimal(ticker.get("bidVolume")), exchange.decimal(ticker.get("askVolume")))
    stamp = ticker.get("timestamp")
    ts = datetime.fromtimestamp(int(stamp) / 1000, UTC) if stamp else datetime.now(UTC)
    last = exchange.decimal(ticker.get("last"), default=(bid + ask) / 2)
    return domain.Quote(symbol=symbol, bid=bid, ask=ask, last=last, size=size, ts=ts)


async def stream(
    settings: CcxtMarketDataSettings,
    exchange_id: str,
    wanted: Iterable[str],
    *,
    setting: str,
    timeout_seconds: float,
) -> AsyncIterator[list[domain.Quote]]:
    """Batches of quotes of the ``wanted`` Sapphire symbols from ``exchange_id``, forever (until
    cancelled). ``setting`` names where the exchange id came from, for the error that says
    ccxt has no such exchange or that it lists none of the symbols; ``timeout_seconds`` bounds
    one ccxt request. The trader API (``feed=ccxt``) and ``sapphire feed --source ccxt:<id>``
    both stream through here."""
    mapping = symbols.SymbolMap(settings.ccxt_quote_currencies)
    client = exchange.build_market_data(
        settings, exchange_id, setting=setting, timeout_seconds=timeout_seconds
    )
    try:
        markets = await _markets(client, mapping, wanted, setting)
        if client.has.get("watchTicker"):
            async for batch in _watch(client, markets):
                yield batch
        else:
            async for batch in _poll(client, markets, settings.feed_poll_seconds):
                yield batch
    finally:
        await client.close()


async def _markets(
    client: Any, mapping: symbols.SymbolMap, wanted: Iterable[str], setting: str
) -> dict[str, str]:
    """Exchange symbol -> Sapphire symbol, for the wanted symbols the exchange lists."""
    delay = BACKOFF_FIRST_SECONDS
    while True:
        try:
            listed = await client.load_markets()
            break
        except ccxt.BaseError as error:
            log.warning(
                "ccxt feed: markets of %s not loaded (%s); retrying in %.1fs", client.id, error, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)
    markets = {}
    for symbol in wanted:
        try:
            market = mapping.to_exchange(symbol)
        except symbols.UnmappedSymbolError as error:
            log.warning("ccxt feed: %s skipped: %s", symbol, error)
            continue
        if market not in listed:
            log.warning("ccxt feed: %s lists no %s (for %s): skipped", client.id, market, symbol)
            continue
        markets[market] = symbol
    if not markets:
        raise NoMarketsError(f"{setting}: {client.id} lists none of the configured instruments")
    return markets


async def _watch(client: Any, markets: dict[str, str]) -> AsyncIterator[list[domain.Quote]]:
    queue: asyncio.Queue[domain.Quote] = asyncio.Queue()
    watchers = [
        asyncio.create_task(_watch_one(client, m, s, queue), name=f"watch {m}") for m, s in markets.items()
    ]
    try:
        while True:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            yield batch
    finally:
        for watcher in watchers:
            watcher.cancel()
        for watcher in watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def _watch_one(client: Any, market: str, symbol: str, queue: asyncio.Queue[domain.Quote]) -> None:
    delay = BACKOFF_FIRST_SECONDS
    while True:
        try:
            ticker = await client.watch_ticker(market)
        except ccxt.BaseError as error:
            log.warning("ccxt feed: %s stream failed (%s); reconnecting in %.1fs", market, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)
            continue
        delay = BACKOFF_FIRST_SECONDS
        quote = quote_of(ticker, symbol)
        if quote is not None:
            queue.put_nowait(quote)


async def _poll(client: Any, markets: dict[str, str], every: float) -> AsyncIterator[list[domain.Quote]]:
    delay = BACKOFF_FIRST_SECONDS
    while True:
        batch = []
        try:
            for market, symbol in markets.items():
                quote = quote_of(await client.fetch_ticker(market), symbol)
                if quote is not None:
                    batch.append(quote)
        except ccxt.BaseError as error:
            log.warning("ccxt feed: polling %s failed (%s); retrying in %.1fs", client.id, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)
            continue
        delay = BACKOFF_FIRST_SECONDS
        if batch:
            yield batch
        await asyncio.sleep(every)
