"""``sapphire data download``: an exchange's OHLCV bars through ccxt, into Parquet for a backtest.

The exchange is built where every ccxt exchange of Sapphire is (``services/exchange.py``:
ccxt's own rate limiter, spot markets, numbers as strings so prices stay exact) and symbols
go through the one symbol map (``core/symbols.py``: ``BTC-USD`` is ``BTC/USDT``), from the
trader API's ``SAPPHIRE_CCXT_*`` settings. History is paged with ``fetch_ohlcv(since=...)``
until ``--until`` (default: now). A bar that has not closed yet is never written, so a
download is history, not a guess. Network errors are retried with backoff; anything else
the exchange answers fails the command with one line naming the option.

The file has the bar columns ``sapphire backtest --data`` reads: ``symbol`` (Sapphire's),
``ts`` (the bar's open, UTC), and ``open``, ``high``, ``low``, ``close``, ``volume`` as exact
decimal strings, sorted by time, then symbol.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import ccxt.async_support

from sapphire.trader_api.core.symbols import SymbolMap, UnmappedSymbolError
from sapphire.trader_api.services import exchange as exchanges
from sapphire.trader_api.settings import TraderApiSettings

PAGE = 1000
"""Bars asked for per request (most exchanges cap a page near this)."""
ATTEMPTS = 5
COLUMNS = ("symbol", "ts", "open", "high", "low", "close", "volume")


class DownloadError(ValueError):
    """The download cannot be done as asked; one line naming the option or the exchange's answer."""


@dataclasses.dataclass(frozen=True)
class Bar:
    symbol: str
    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclasses.dataclass(frozen=True)
class Downloaded:
    path: Path
    sha256: str
    bars: dict[str, int]
    """Bars written per symbol."""
    first: datetime | None
    last: datetime | None


def _exact(value: Any, what: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise DownloadError(f"the exchange answered a {what} that is not a number: {value!r}") from None
    if not number.is_finite():
        raise DownloadError(f"the exchange answered a {what} that is not finite: {value!r}")
    return number


async def _page(
    fetch: Callable[..., Any], market: str, timeframe: str, since_ms: int, sleep: Callable[[float], Any]
) -> list[list[Any]]:
    for attempt in range(ATTEMPTS):
        try:
            rows: list[list[Any]] = await fetch(market, timeframe, since=since_ms, limit=PAGE)
            return rows
        except ccxt.NetworkError as error:  # includes RequestTimeout and ExchangeNotAvailable
            if attempt == ATTEMPTS - 1:
                problem = f"{type(error).__name__}: {str(error)[:300]}"
                raise DownloadError(f"--exchange: no answer after {ATTEMPTS} attempts: {problem}") from None
            await sleep(min(2.0**attempt, 30.0))
        except ccxt.BadSymbol:
            raise DownloadError(f"--symbols: the exchange has no market {market}") from None
        except ccxt.BaseError as error:
            # A public client holds no keys, so the exchange's message can be shown as it is.
            raise DownloadError(f"--exchange: {type(error).__name__}: {str(error)[:300]}") from None
    raise AssertionError("unreachable")


async def fetch_bars(
    client: Any,
    *,
    symbols: Sequence[str],
    symbol_map: SymbolMap,
    timeframe: str,
    since: datetime,
    until: datetime,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> list[Bar]:
    """Every closed bar of ``symbols`` with ``since <= open < until``, oldest first."""
    if timeframe not in (client.timeframes or {}):
        known = ", ".join(sorted(client.timeframes or {}))
        raise DownloadError(f"--timeframe: {client.id} has no timeframe {timeframe!r}; it has {known}")
    step_ms = int(client.parse_timeframe(timeframe) * 1000)
    until_ms = int(until.timestamp() * 1000)
    bars: list[Bar] = []
    for symbol in symbols:
        try:
            market = symbol_map.to_exchange(symbol)
        except UnmappedSymbolError as error:
            raise DownloadError(f"--symbols: {error}") from None
        cursor = int(since.timestamp() * 1000)
        while cursor < until_ms:
            rows = await _page(client.fetch_ohlcv, market, timeframe, cursor, sleep)
            fresh = [row for row in rows if cursor <= int(row[0]) < until_ms]
            for opened, *prices in fresh:
                if int(opened) + step_ms > until_ms:
                    continue  # not closed by --until (or now): never write a bar still forming
                o, h, low, c, v = (_exact(p, "price") for p in prices[:5])
                stamp = datetime.fromtimestamp(int(opened) / 1000, tz=UTC)
                bars.append(Bar(symbol, stamp, o, h, low, c, v))
            if not fresh:
                break
            cursor = int(fresh[-1][0]) + step_ms
    bars.sort(key=lambda bar: (bar.ts, bar.symbol))
    return bars


def write_parquet(bars: Sequence[Bar], path: Path) -> str:
    """Write ``bars`` to ``path`` (atomically); its SHA-256."""
    import pyarrow
    import pyarrow.parquet

    table = pyarrow.table(
        {
            "symbol": pyarrow.array([b.symbol for b in bars], pyarrow.string()),
            "ts": pyarrow.array([b.ts for b in bars], pyarrow.timestamp("ms", tz="UTC")),
            **{
                column: pyarrow.array([format(getattr(b, column), "f") for b in bars], pyarrow.string())
                for column in COLUMNS[2:]
            },
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    pyarrow.parquet.write_table(table, partial)
    partial.replace(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def download(
    *,
    exchange_id: str,
    symbols: Sequence[str],
    timeframe: str,
    since: datetime,
    until: datetime | None,
    output: Path,
    settings: TraderApiSettings | None = None,
) -> Downloaded:
    """Fetch and write; the client is always closed."""
    settings = settings or TraderApiSettings(dev_mode=True)
    end = until or datetime.now(UTC)
    if since >= end:
        raise DownloadError("--since: must be before --until (or now)")
    try:
        client = exchanges.build(settings, exchange_id, setting="--exchange", private=False)
    except exchanges.ExchangeConfigError as error:
        raise DownloadError(str(error)) from None
    try:
        bars = await fetch_bars(
            client,
            symbols=symbols,
            symbol_map=SymbolMap(settings.ccxt_quote_currencies),
            timeframe=timeframe,
            since=since,
            until=end,
        )
    finally:
        await client.close()
    if not bars:
        raise DownloadError(
            f"--since: {exchange_id} has no {timeframe} bars of {', '.join(symbols)} in that period"
        )
    sha256 = write_parquet(bars, output)
    counts = {symbol: sum(1 for b in bars if b.symbol == symbol) for symbol in symbols}
    return Downloaded(path=output, sha256=sha256, bars=counts, first=bars[0].ts, last=bars[-1].ts)
