"""The live ccxt feed, run inside the API process through the ingest service (``feed=ccxt``).

Quotes keep the exchange's timestamps (:mod:`ccxt_source`), so nothing is restamped. Only the
account's writer ingests: on a follower replica the batches are skipped. The same source also
runs as its own process, posting to the API (``sapphire feed --source ccxt:<exchange>``,
:mod:`sapphire.feed.runner`), where one feed serves any number of replicas."""

from __future__ import annotations

import asyncio
import logging

from sapphire.trader_api import errors
from sapphire.trader_api.core import domain
from sapphire.trader_api.services import ingest
from sapphire.trader_api.services.runtime import Runtime
from sapphire.trader_api.services.writer import NotWriterError, Writer

log = logging.getLogger(__name__)


async def run_configured_feed(runtime: Runtime, writer: Writer) -> None:
    """Ingest the exchange's quotes until cancelled; the source retries outages with backoff.

    What it cannot retry (ccxt has no such exchange, the exchange lists none of the configured
    instruments) ends the feed: that is logged as an error here, and ``/readyz`` answers 503
    with the reason (:func:`stopped_because`), since without quotes every order is refused."""
    from sapphire.trader_api.feeds import ccxt_source

    settings = runtime.settings
    batches = ccxt_source.stream(
        settings,
        settings.feed_exchange,
        runtime.catalog.configured,
        setting="feed_exchange",
        timeout_seconds=settings.venue_timeout_seconds,
    )
    try:
        async for batch in batches:
            await _ingest(runtime, writer, batch)
    except Exception as error:
        log.error("feed: the market feed stopped, no quotes will arrive: %s", error)
        raise


def stopped_because(task: asyncio.Task[None]) -> str | None:
    """Why the feed ``task`` ended, or ``None`` while it runs (or was stopped on shutdown)."""
    if not task.done() or task.cancelled():
        return None
    error = task.exception()
    return f"{type(error).__name__}: {error}" if error is not None else "the feed ended"


async def _ingest(runtime: Runtime, writer: Writer, batch: list[domain.Quote]) -> None:
    try:
        await ingest.ingest(runtime, writer, batch)
    except NotWriterError:
        log.debug("feed: batch skipped, this replica is not the writer")
    except errors.UnavailableError as error:
        log.warning("feed: batch dropped, %s", error)
    except Exception:
        log.exception("feed: batch failed")
