"""Tick ingestion: the latest quote and the tick stream go to the bus first, then bars,
resting-order fills and marks go to the database in one transaction.

Bus first: if Redis is down the batch is refused (503) before anything is written. If the
database then fails, the bus holds a quote newer than the bars, which the next tick mends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from sapphire.trader_api import bus, errors
from sapphire.trader_api.core import bars, domain
from sapphire.trader_api.services import trading
from sapphire.trader_api.services.market import quote_payload
from sapphire.trader_api.services.runtime import Runtime, dumps
from sapphire.trader_api.storage import books, tables

MAX_CLOCK_SKEW = timedelta(seconds=60)
"""How far ahead of the API's clock a tick's timestamp may be."""


async def _store_bars(session: AsyncSession, quotes: Sequence[domain.Quote]) -> None:
    # Account row is locked by the caller, so read-merge-write cannot race another ingest.
    for interval in bars.Interval:
        for (symbol, start), partial in bars.aggregate(list(quotes), interval).items():
            row = await session.get(tables.Bar, (symbol, interval.value, start))
            if row is None:
                session.add(
                    tables.Bar(
                        symbol=symbol,
                        interval=interval.value,
                        start=start,
                        open=partial.open,
                        high=partial.high,
                        low=partial.low,
                        close=partial.close,
                        volume=partial.volume,
                        open_ts=partial.open_ts,
                        close_ts=partial.close_ts,
                        trades=partial.trades,
                    )
                )
                continue
            stored = bars.Bar(
                symbol=symbol,
                interval=interval,
                start=start,
                open=row.open,
                high=row.high,
                low=row.low,
                close=row.close,
                volume=row.volume,
                open_ts=row.open_ts,
                close_ts=row.close_ts,
                trades=row.trades,
            )
            merged = bars.merge(stored, partial)
            row.open, row.high, row.low, row.close = merged.open, merged.high, merged.low, merged.close
            row.volume, row.open_ts, row.close_ts, row.trades = (
                merged.volume,
                merged.open_ts,
                merged.close_ts,
                merged.trades,
            )


async def ingest(runtime: Runtime, quotes: Sequence[domain.Quote]) -> int:
    """Ingest a batch of ticks (in order); returns how many were accepted."""
    now = runtime.clock()
    for index, quote in enumerate(quotes):
        runtime.catalog.require(quote.symbol, ["body", "ticks", index, "symbol"])
        # A tick from the future would never turn stale and would disarm the stale-quote check.
        if quote.ts > now + MAX_CLOCK_SKEW:
            raise errors.FieldError(
                ["body", "ticks", index, "ts"],
                f"is {(quote.ts - now).total_seconds():.0f}s in the future "
                f"(at most {MAX_CLOCK_SKEW.seconds}s allowed)",
            )
    latest: dict[str, domain.Quote] = {}
    for quote in quotes:
        if quote.symbol not in latest or quote.ts >= latest[quote.symbol].ts:
            latest[quote.symbol] = quote
    try:
        await runtime.bus.write(
            values={runtime.names.quote(symbol): dumps(quote_payload(q)) for symbol, q in latest.items()},
            messages=[(runtime.names.ticks(q.symbol), dumps(quote_payload(q))) for q in quotes],
        )
    except bus.BusUnavailableError as error:
        runtime.metrics.bus_errors.inc()
        raise errors.UnavailableError(f"market data bus unavailable: {error}") from error
    outbox = runtime.outbox()
    service = trading.TradingService(runtime)
    async with runtime.database.write() as session:
        account = await books.account(session, lock=True)
        await _store_bars(session, quotes)
        await service.on_quotes(session, list(quotes), account, outbox)
        await runtime.flush(outbox)
    for quote in quotes:
        runtime.metrics.ticks.labels(quote.symbol).inc()
    return len(quotes)
