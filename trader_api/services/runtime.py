"""What every service shares: settings, database, bus, catalog, clock and metrics."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sapphire import bus
from sapphire.trader_api import errors, metrics
from sapphire.trader_api.core import risk
from sapphire.trader_api.settings import InstrumentConfig, TraderApiSettings
from sapphire.trader_api.storage import books
from sapphire.trader_api.storage.database import Database

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def dumps(payload: Any) -> str:
    """JSON with decimals as plain strings and timestamps as ISO-8601."""

    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, datetime):
            return value.isoformat()
        return str(value)

    return json.dumps(payload, default=default, separators=(",", ":"))


class Catalog:
    """The tradable instruments; in all-market mode every well-formed symbol is one."""

    def __init__(self, settings: TraderApiSettings) -> None:
        self.configured = {instrument.symbol: instrument for instrument in settings.instruments}
        self.all_market = not self.configured
        self._default = settings

    def get(self, symbol: str) -> InstrumentConfig | None:
        if self.all_market:
            return InstrumentConfig(
                symbol=symbol,
                tick_size=self._default.default_tick_size,
                lot_size=self._default.default_lot_size,
                quote_currency=self._default.default_quote_currency,
            )
        return self.configured.get(symbol)

    def require(self, symbol: str, loc: list[str | int]) -> InstrumentConfig:
        instrument = self.get(symbol)
        if instrument is None:
            known = ", ".join(sorted(self.configured))
            raise errors.FieldError(loc, f"unknown instrument {symbol!r} (known: {known})")
        return instrument


@dataclasses.dataclass
class Runtime:
    settings: TraderApiSettings
    database: Database
    bus: bus.Bus
    metrics: metrics.Metrics
    clock: Clock = utcnow

    def __post_init__(self) -> None:
        self.names = bus.Names(self.settings.redis_key_prefix)
        self.catalog = Catalog(self.settings)
        self._prepared = False

    async def prepare(self) -> None:
        """Make sure the database answers and holds the paper account (created on first use).

        Raises when the database is down or not migrated; the readiness probe retries."""
        if self._prepared:
            await self.database.ping()
            return
        initial_cash = self.settings.initial_cash
        if self.settings.venue == "ccxt":  # a live account starts with what the exchange holds
            async with self.database.read() as session:
                opened = await books.has_account(session)
            if not opened:
                from sapphire.trader_api.services import exchange  # ccxt loads for a live venue only

                initial_cash = await exchange.opening_cash(self.settings)
                log.info("live venue: the new account's cash is the exchange's balance, %s", initial_cash)
        async with self.database.write() as session:
            await books.ensure_account(
                session,
                initial_cash=initial_cash,
                limits=risk.RiskLimits(**self.settings.risk.model_dump()),
                now=self.clock(),
            )
        self._prepared = True
