"""Runs the configured built-in feed inside the API process, through the ingest service.

One batch every ``feed_interval_seconds``, stamped with the API's clock (a replay keeps its
order and prices, not its original timing)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

from sapphire.trader_api import errors
from sapphire.trader_api.core import domain
from sapphire.trader_api.feeds import replay, simulated
from sapphire.trader_api.services import ingest
from sapphire.trader_api.services.runtime import Runtime
from sapphire.trader_api.services.writer import NotWriterError, Writer

log = logging.getLogger(__name__)

START_PRICES = {"BTC-USD": Decimal("65000"), "ETH-USD": Decimal("3200"), "AAPL": Decimal("190")}


def _batches(runtime: Runtime) -> Iterator[list[domain.Quote]]:
    settings = runtime.settings
    if settings.feed == "replay":
        if settings.feed_replay_path is None:
            raise ValueError("feed_replay_path: required when feed is replay")
        with settings.feed_replay_path.open(newline="") as lines:
            for quote in replay.read_ticks(lines, shift_to=runtime.clock()):
                yield [quote]
        return
    instruments = [
        simulated.SimulatedInstrument(
            symbol=i.symbol,
            start_price=START_PRICES.get(i.symbol, Decimal(100)),
            tick_size=i.tick_size,
            lot_size=i.lot_size,
            typical_size=max(i.lot_size * 10, Decimal(1) if i.lot_size >= 1 else i.lot_size * 100),
        )
        for i in runtime.catalog.configured.values()
    ]
    yield from simulated.simulate(
        instruments,
        seed=settings.feed_seed,
        start=runtime.clock(),
        step=timedelta(seconds=settings.feed_interval_seconds),
    )


async def run_configured_feed(runtime: Runtime, writer: Writer) -> None:
    """Publish one batch per ``feed_interval_seconds`` until cancelled; outages are retried.

    Only the account's writer ingests: on a follower replica the batches are skipped."""
    if runtime.settings.feed == "ccxt":  # live prices, as the exchange stamps them
        from sapphire.trader_api.feeds import ccxt_source

        async for batch in ccxt_source.stream(runtime.settings, runtime.catalog.configured):
            await _ingest(runtime, writer, batch)
        return
    interval = runtime.settings.feed_interval_seconds
    for batch in _batches(runtime):
        # Each batch is stamped with the API's clock and batches are paced by
        # feed_interval_seconds, so replayed or simulated data always looks live.
        now = runtime.clock()
        await _ingest(
            runtime, writer, [domain.Quote(q.symbol, q.bid, q.ask, q.last, q.size, now) for q in batch]
        )
        await asyncio.sleep(interval)


async def _ingest(runtime: Runtime, writer: Writer, batch: list[domain.Quote]) -> None:
    try:
        await ingest.ingest(runtime, writer, batch)
    except NotWriterError:
        log.debug("feed: batch skipped, this replica is not the writer")
    except errors.UnavailableError as error:
        log.warning("feed: batch dropped, %s", error)
    except Exception:
        log.exception("feed: batch failed")
