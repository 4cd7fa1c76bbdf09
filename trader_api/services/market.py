"""Market data reads: latest quotes (Redis) and bars (database)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from sapphire import bus
from sapphire.trader_api import errors
from sapphire.trader_api.core import bars, domain
from sapphire.trader_api.services.runtime import Runtime
from sapphire.trader_api.storage import books, journal, tables


def quote_payload(quote: domain.Quote) -> dict[str, str]:
    """The JSON of a tick on the bus: decimals as strings, ts ISO-8601 UTC."""
    return {
        "symbol": quote.symbol,
        "bid": format(quote.bid, "f"),
        "ask": format(quote.ask, "f"),
        "last": format(quote.last, "f"),
        "size": format(quote.size, "f"),
        "ts": quote.ts.isoformat(),
    }


def quote_from_payload(data: str) -> domain.Quote:
    raw = json.loads(data)
    return domain.Quote(
        symbol=raw["symbol"],
        bid=Decimal(raw["bid"]),
        ask=Decimal(raw["ask"]),
        last=Decimal(raw["last"]),
        size=Decimal(raw["size"]),
        ts=datetime.fromisoformat(raw["ts"]),
    )


class MarketService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def quote(self, symbol: str) -> domain.Quote | None:
        """The latest quote, ``None`` if none arrived yet. UnavailableError if Redis is down."""
        try:
            data = await self.runtime.bus.get(self.runtime.names.quote(symbol))
        except bus.BusUnavailableError as error:
            self.runtime.metrics.bus_errors.inc()
            raise errors.UnavailableError(f"market data bus unavailable: {error}") from error
        return None if data is None else quote_from_payload(data)

    async def quote_with_staleness(self, symbol: str) -> tuple[domain.Quote, bool]:
        quote = await self.quote(symbol)
        if quote is None:
            raise errors.NotFoundError(f"no quote for {symbol} yet")
        async with self.runtime.database.read() as session:
            account = await books.account(session)
        limits = journal.limits_from_json(account.risk_limits)
        return quote, quote.age_seconds(self.runtime.clock()) > limits.stale_quote_seconds

    async def bars(self, symbol: str, interval: bars.Interval, limit: int) -> list[tables.Bar]:
        """The latest ``limit`` bars, oldest first."""
        statement = (
            sa.select(tables.Bar)
            .where(tables.Bar.symbol == symbol, tables.Bar.interval == interval.value)
            .order_by(tables.Bar.start.desc())
            .limit(limit)
        )
        async with self.runtime.database.read() as session:
            rows = list((await session.execute(statement)).scalars().all())
        return rows[::-1]

    async def seen_symbols(self) -> list[str]:
        """Symbols with market data, for the instrument list in all-market mode."""
        statement = sa.select(tables.Bar.symbol).distinct().order_by(tables.Bar.symbol)
        async with self.runtime.database.read() as session:
            return list((await session.execute(statement)).scalars().all())
