"""The market feed's I/O: take a source's ticks and post them to the trader API's ingest
route (``POST /v1/ticks``) on one keep-alive connection.

* **Timestamps are the source's.** A tick is posted with the timestamp its source gave
  it: a replay keeps its recorded times (or the fixed shift asked for), the simulated feed
  stamps the times of its own walk, a ccxt exchange its own (so the API's stale-quote rule
  measures the market data's real age). Simulated and replayed ticks are *sent* as those
  timestamps are spaced, ``speed`` times faster (``speed`` 0: as fast as the API takes them);
  ticks that are due together go in one batch (up to ``max_batch``), so a busy source costs
  one request per batch, not per tick.
* **Live ticks** (``ccxt:<exchange>``, :mod:`sapphire.trader_api.feeds.ccxt_source`, the
  same source the API's own ``feed=ccxt`` runs) are sent as they arrive, never paced: what
  arrived while a batch was being posted goes in the next one.
* **Outages.** A trader API that is down or answers 5xx is retried with backoff, the batch
  kept in hand; ticks that fall due meanwhile follow once it is back, in order. A live
  source does not wait for the API: while it is away at most ``max_batch`` newer ticks are
  kept, the oldest dropped and counted (``dropped``). The exchange's own outages are the
  source's to retry (reconnect with backoff).
* **Clear refusals.** A 401 or 403 (a wrong token) stops the feed with that message: a feed
  that can never post should not pretend to run. A 422 names the field of the batch the API
  refused; that batch is skipped and logged, the feed goes on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from sapphire.agents import client, supervision
from sapphire.feed.settings import MarketFeedSettings
from sapphire.trader_api.core import domain
from sapphire.trader_api.feeds import replay, simulated

CCXT_PREFIX = "ccxt:"
"""``--source ccxt:<exchange id>``: live market data from a ccxt exchange."""

log = logging.getLogger(__name__)

DEFAULT_TICK_SIZE = Decimal("0.01")
DEFAULT_LOT_SIZE = Decimal("0.0001")
"""Tick and lot of a symbol the trader API does not list (all-market mode)."""


class FeedError(RuntimeError):
    """The feed cannot work as configured (a refused token, a missing file); one line for the user."""


class UnavailableError(RuntimeError):
    """The trader API could not take a batch this time; the batch is retried."""


class RejectedError(RuntimeError):
    """The trader API refused a batch (4xx other than auth); the message names the field."""


@dataclasses.dataclass
class FeedTotals:
    ticks: int = 0
    batches: int = 0
    rejected_batches: int = 0
    retries: int = 0
    dropped: int = 0
    """Live ticks dropped, oldest first, while the API was unavailable for longer than
    ``max_batch`` of them took to arrive."""


_ENCODER = msgspec.json.Encoder()
_T = TypeVar("_T")


def _tick(quote: domain.Quote) -> dict[str, Any]:
    # Plain notation: str() of a Decimal below 1e-6 is an exponent form (5E-8), which the
    # API's decimal pattern refuses.
    return {
        "symbol": quote.symbol,
        "bid": format(quote.bid, "f"),
        "ask": format(quote.ask, "f"),
        "last": format(quote.last, "f"),
        "size": format(quote.size, "f"),
        "ts": quote.ts,
    }


def encode_batch(quotes: Iterable[domain.Quote]) -> bytes:
    """The ``POST /v1/ticks`` body: decimals as exact strings, timestamps RFC 3339."""
    return _ENCODER.encode({"ticks": [_tick(q) for q in quotes]})


class TickPoster:
    """The trader API's ingest route, through the agents' API client (``agents.client``: one
    persistent keep-alive connection, aiohttp and msgspec), its errors in the feed's terms."""

    def __init__(self, base_url: str, *, token: str, timeout_seconds: float = 10.0) -> None:
        self.api = client.TraderApiClient(base_url, token=token, timeout_seconds=timeout_seconds)

    async def aclose(self) -> None:
        await self.api.aclose()

    async def _answer(self, call: Awaitable[_T]) -> _T:
        try:
            return await call
        except client.ApiRejectedError as error:
            if error.status in (401, 403):
                raise FeedError(
                    f"the trader API refused the feed's token ({error.status}): set SAPPHIRE_AGENT_TOKEN "
                    "to a token with scope agent"
                ) from None
            raise RejectedError(str(error)) from error
        except client.ApiUnavailableError as error:
            raise UnavailableError(str(error)) from error

    async def instruments(self) -> dict[str, tuple[Decimal, Decimal]]:
        """The API's listed symbols with their (tick size, lot size)."""
        listed = await self._answer(self.api.instruments())
        return {instrument.symbol: (instrument.tick_size, instrument.lot_size) for instrument in listed}

    async def post(self, quotes: list[domain.Quote]) -> int:
        """Post one batch; how many ticks the API accepted."""
        return await self._answer(self.api.post_ticks(encode_batch(quotes)))


def feed_symbols(listed: Iterable[str], settings: MarketFeedSettings) -> list[str]:
    """The configured symbols, else every instrument the API lists."""
    symbols = settings.feed_symbols or sorted(listed)
    if not symbols:
        raise FeedError(
            "feed_symbols: the trader API lists no instruments (all-market mode): set SAPPHIRE_FEED_SYMBOLS"
        )
    return symbols


def exchange_of(source: str) -> str | None:
    """The exchange id of a ``ccxt:<exchange>`` source; ``None`` for a built-in one."""
    return source.removeprefix(CCXT_PREFIX) if source.startswith(CCXT_PREFIX) else None


def check_source(source: str) -> str:
    """``source`` if the feed can run it; a :class:`FeedError` naming ``--source`` otherwise
    (ccxt is imported only for a ccxt source)."""
    exchange_id = exchange_of(source)
    if exchange_id is None:
        if source not in ("simulated", "replay"):
            raise FeedError(f"--source: expected simulated, replay or ccxt:<exchange>, got {source!r}")
        return source
    from sapphire.trader_api.services import exchange

    try:
        exchange.check_exchange_id(exchange_id, setting="--source")
    except exchange.ExchangeConfigError as error:
        raise FeedError(f"{error} (the exchange id after ccxt:, e.g. ccxt:binance)") from None
    return source


def simulated_ticks(
    listed: dict[str, tuple[Decimal, Decimal]], settings: MarketFeedSettings, *, start: datetime
) -> Iterator[domain.Quote]:
    symbols = feed_symbols(listed, settings)
    instruments = [
        simulated.instrument(
            symbol,
            tick_size=listed.get(symbol, (DEFAULT_TICK_SIZE, DEFAULT_LOT_SIZE))[0],
            lot_size=listed.get(symbol, (DEFAULT_TICK_SIZE, DEFAULT_LOT_SIZE))[1],
        )
        for symbol in symbols
    ]
    batches = simulated.simulate(
        instruments,
        seed=settings.feed_seed,
        start=start,
        step=timedelta(seconds=settings.feed_interval_seconds),
    )
    return itertools.chain.from_iterable(batches)


def replay_ticks(settings: MarketFeedSettings, *, now: datetime) -> Iterator[domain.Quote]:
    path = settings.feed_replay_path
    if path is None:
        raise FeedError("--data: the replay feed needs a CSV of ticks (or SAPPHIRE_FEED_REPLAY_PATH)")
    try:
        lines = path.open(newline="")
    except OSError as error:
        raise FeedError(f"--data {path}: {error.strerror}") from None
    shift = settings.feed_shift

    def ticks() -> Iterator[domain.Quote]:
        with lines:
            if shift == "now":
                yield from replay.shift_to(replay.read_ticks(lines), now)
            else:
                yield from replay.read_ticks(lines, shift=timedelta(seconds=float(shift or 0)))

    return ticks()


class Pacer:
    """When each tick is due: its timestamp's distance from the first tick's, over ``speed``."""

    def __init__(self, speed: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.speed, self.clock = speed, clock
        self._anchor: tuple[float, datetime] | None = None

    def due(self, quote: domain.Quote) -> float:
        if self._anchor is None:
            self._anchor = (self.clock(), quote.ts)
        if self.speed == 0:
            return self._anchor[0]
        started, first = self._anchor
        return started + (quote.ts - first).total_seconds() / self.speed


async def run_feed(
    ticks: Iterator[domain.Quote],
    poster: TickPoster,
    *,
    speed: float,
    max_batch: int,
    stop: asyncio.Event,
    backoff_max_seconds: float = 30.0,
) -> FeedTotals:
    """Post ``ticks`` as they fall due until the source ends or ``stop`` is set."""
    totals = FeedTotals()
    pacer = Pacer(speed)
    backoff = supervision.Backoff(initial=0.1, maximum=backoff_max_seconds)
    upcoming = next(ticks, None)
    while upcoming is not None and not stop.is_set():
        wait = pacer.due(upcoming) - pacer.clock()
        if wait > 0 and await supervision.sleep_or_stop(stop, wait):
            break
        batch = [upcoming]
        upcoming = next(ticks, None)
        now = pacer.clock()
        while upcoming is not None and len(batch) < max_batch and pacer.due(upcoming) <= now:
            batch.append(upcoming)
            upcoming = next(ticks, None)
        await _deliver(batch, poster, totals, backoff, stop)
    return totals


async def run_live_feed(
    batches: AsyncIterator[list[domain.Quote]],
    poster: TickPoster,
    *,
    max_batch: int,
    stop: asyncio.Event,
    backoff_max_seconds: float = 30.0,
) -> FeedTotals:
    """Post a live source's ticks as they arrive until ``stop`` is set (or the source ends; an
    error of the source is raised once what it gave is posted)."""
    totals = FeedTotals()
    backoff = supervision.Backoff(initial=0.1, maximum=backoff_max_seconds)
    waiting: collections.deque[domain.Quote] = collections.deque()
    arrived = asyncio.Event()

    async def receive() -> None:
        async for batch in batches:
            for quote in batch:
                if len(waiting) >= max_batch:
                    waiting.popleft()
                    totals.dropped += 1
                waiting.append(quote)
            arrived.set()

    receiving = asyncio.create_task(receive(), name="market feed source")
    stopping = asyncio.create_task(stop.wait(), name="market feed stop")
    try:
        while not stop.is_set():
            if not waiting:
                if receiving.done():
                    receiving.result()  # the source's error, if it failed
                    break
                arrived.clear()
                arriving = asyncio.create_task(arrived.wait())
                await asyncio.wait((arriving, receiving, stopping), return_when=asyncio.FIRST_COMPLETED)
                arriving.cancel()
                continue
            batch = [waiting.popleft() for _ in range(min(len(waiting), max_batch))]
            await _deliver(batch, poster, totals, backoff, stop)
    finally:
        for task in (receiving, stopping):  # cancelling the source closes its exchange session
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return totals


async def _deliver(
    batch: list[domain.Quote],
    poster: TickPoster,
    totals: FeedTotals,
    backoff: supervision.Backoff,
    stop: asyncio.Event,
) -> None:
    """Post one batch, retrying an unavailable API with backoff, until it is taken, refused
    (logged, skipped) or ``stop`` is set."""
    while not stop.is_set():
        try:
            totals.ticks += await poster.post(batch)
            totals.batches += 1
            backoff.reset()
            return
        except RejectedError as error:
            totals.rejected_batches += 1
            log.warning("feed: batch of %d ticks refused, skipped: %s", len(batch), error)
            return
        except UnavailableError as error:
            totals.retries += 1
            delay = backoff.next_delay()
            log.warning("feed: trader API unavailable, retrying in %.1fs: %s", delay, error)
            if await supervision.sleep_or_stop(stop, delay):
                return


async def run_market_feed(
    settings: MarketFeedSettings,
    source: str,
    *,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> FeedTotals:
    """The ``sapphire feed`` process: ``source`` is ``simulated``, ``replay`` or
    ``ccxt:<exchange>``. SIGTERM stops it (``handle_signals``; ``sapphire up`` owns the signals
    and sets ``stop`` itself)."""
    exchange_id = exchange_of(check_source(source))
    stop = stop or asyncio.Event()
    poster = TickPoster(
        str(settings.trader_api_url),
        token=settings.agent_token.get_secret_value(),
        timeout_seconds=settings.feed_timeout_seconds,
    )
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT) if handle_signals else ():
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (sapphire up, tests): the caller owns ``stop``
    try:
        if exchange_id is not None:
            return await _run_ccxt(exchange_id, settings, poster, stop)
        now = datetime.now(UTC)
        if source == "replay":
            ticks = replay_ticks(settings, now=now)
        else:
            listed = await _listed(poster, settings, stop)
            if stop.is_set():  # stopped while waiting for the API: no instruments is no error then
                return FeedTotals()
            ticks = simulated_ticks(listed, settings, start=now)
        log.info("market feed %s started", source)
        try:
            return await run_feed(
                ticks,
                poster,
                speed=settings.feed_speed,
                max_batch=settings.feed_max_batch,
                stop=stop,
                backoff_max_seconds=settings.feed_backoff_max_seconds,
            )
        except replay.ReplayError as error:
            raise FeedError(f"--data {settings.feed_replay_path}: {error}") from None
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await poster.aclose()


async def _run_ccxt(
    exchange_id: str, settings: MarketFeedSettings, poster: TickPoster, stop: asyncio.Event
) -> FeedTotals:
    listed = {} if settings.feed_symbols else await _listed(poster, settings, stop)
    if stop.is_set():  # stopped while waiting for the API
        return FeedTotals()
    from sapphire.trader_api.feeds import ccxt_source  # ccxt loads for a ccxt source only

    batches = ccxt_source.stream(
        settings,
        exchange_id,
        feed_symbols(listed, settings),
        setting="--source",
        timeout_seconds=settings.feed_timeout_seconds,
    )
    log.info("market feed ccxt:%s started", exchange_id)
    try:
        return await run_live_feed(
            batches,
            poster,
            max_batch=settings.feed_max_batch,
            stop=stop,
            backoff_max_seconds=settings.feed_backoff_max_seconds,
        )
    except ccxt_source.NoMarketsError as error:
        raise FeedError(str(error)) from None


async def _listed(
    poster: TickPoster, settings: MarketFeedSettings, stop: asyncio.Event
) -> dict[str, tuple[Decimal, Decimal]]:
    """The API's instruments, waiting (with backoff) for an API that is not up yet."""
    backoff = supervision.Backoff(initial=0.1, maximum=settings.feed_backoff_max_seconds)
    while True:
        try:
            return await poster.instruments()
        except UnavailableError as error:
            delay = backoff.next_delay()
            log.warning("feed: trader API unavailable, retrying in %.1fs: %s", delay, error)
            if await supervision.sleep_or_stop(stop, delay):
                return {}
