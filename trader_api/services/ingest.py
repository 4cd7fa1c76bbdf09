"""Tick ingestion: ticks are checked here, then applied by the order engine (latest quotes,
resting-order fills, day-order expiry, marks and bars), journaled, and only then published
(the latest quote, the tick stream and the events), so subscribers never hear of a fill
before it is durable."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from sapphire.trader_api import errors
from sapphire.trader_api.core import domain, records
from sapphire.trader_api.services.runtime import Runtime
from sapphire.trader_api.services.writer import Writer

MAX_CLOCK_SKEW = timedelta(seconds=60)
"""How far ahead of the API's clock a tick's timestamp may be."""


def check(runtime: Runtime, command: records.ApplyTicks) -> None:
    """FieldError naming the first tick (in order) of an unknown symbol or from the future."""
    # A batch is thousands of ticks of a few symbols: a valid one is told from its series
    # (each symbol's newest tick, grouped once for the engine too); only an invalid one is
    # walked tick by tick, to name the first offender.
    now = runtime.clock()
    latest = now + MAX_CLOCK_SKEW
    newest = command.series.newest
    if all(runtime.catalog.get(s) is not None and quote.ts <= latest for s, quote in newest.items()):
        return
    _name_first_problem(runtime, command.quotes, now)


def _name_first_problem(runtime: Runtime, quotes: Sequence[domain.Quote], now: datetime) -> None:
    latest = now + MAX_CLOCK_SKEW
    known: set[str] = set()  # a batch repeats a few symbols: each is looked up once
    for index, quote in enumerate(quotes):
        if quote.symbol not in known:
            runtime.catalog.require(quote.symbol, ["body", "ticks", index, "symbol"])
            known.add(quote.symbol)
        # A tick from the future would never turn stale and would disarm the stale-quote check.
        if quote.ts > latest:
            raise errors.FieldError(
                ["body", "ticks", index, "ts"],
                f"is {(quote.ts - now).total_seconds():.0f}s in the future "
                f"(at most {MAX_CLOCK_SKEW.seconds}s allowed)",
            )


async def ingest(runtime: Runtime, writer: Writer, quotes: Sequence[domain.Quote]) -> int:
    """Ingest a batch of ticks (in order); returns how many were accepted."""
    command = records.ApplyTicks(tuple(quotes))
    check(runtime, command)
    result = await writer.submit(command)
    if not isinstance(result, records.TicksApplied):
        raise TypeError(f"unexpected engine result {result!r}")
    # A feed that reads back what it sent (GET /v1/quotes) sees it: the answer waits until
    # the batch is also on the bus, for a moment at most (it is committed either way).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(runtime.settings.redis_timeout_seconds):
            await writer.publisher.wait_delivered(writer.last_publication)
    return result.accepted
