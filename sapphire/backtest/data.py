"""History for a backtest: ticks, or OHLCV bars turned into quotes by a fixed model, from CSV
or Parquet (``.parquet``: the same columns, read by pyarrow; see :func:`parquet_lines`).

Two layouts are recognised by their columns:

* **ticks**, ``symbol,bid,ask,last,size,ts`` (the trader API's replay feed format, read by
  :func:`sapphire.trader_api.feeds.replay.read_ticks`): replayed as they are;
* **bars**, ``symbol,ts,open,high,low,close,volume`` with ``ts`` the bar's start and every
  bar ``timeframe`` long (``--timeframe``, default 60 s).

The bar model (deterministic, and the same in every run) turns one bar into four quotes:

===========================  ============================================================
at                           price
===========================  ============================================================
``start``                    open
``start + timeframe / 3``    low for a rising bar (close >= open), else high
``start + 2 timeframe / 3``  the other extreme
``start + timeframe - 1ms``  close
===========================  ============================================================

Each quote's ``last`` is that price; bid and ask sit ``spread_bps / 2`` either side of it,
rounded outward to the instrument's tick and at least one tick apart; ``size`` is a quarter of
the bar's volume, rounded down to the lot. A bar's close is thus seen only just before the
next bar opens, never earlier: the model adds no lookahead.

Rows may come in any order; :func:`load` returns the quotes sorted by time (then symbol,
stable), clipped to ``[start, end)``. Malformed input raises :class:`DataError` naming the
line and the column.
"""

from __future__ import annotations

import csv
import dataclasses
import decimal
import hashlib
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sapphire.domain import decimals
from sapphire.trader_api.core import domain
from sapphire.trader_api.feeds import replay

BAR_COLUMNS = ("symbol", "ts", "open", "high", "low", "close", "volume")


class DataError(ValueError):
    """The data cannot be replayed; the message names the file, line and column."""


@dataclasses.dataclass(frozen=True)
class BarModel:
    timeframe: timedelta = timedelta(minutes=1)
    spread_bps: Decimal = Decimal(2)

    def describe(self) -> str:
        return (
            f"OHLCV bars of {int(self.timeframe.total_seconds())}s: four quotes per bar (open at its start, "
            "low then high for a rising bar or high then low for a falling one at 1/3 and 2/3, close 1 ms "
            f"before its end); bid/ask {self.spread_bps} bps apart around each price, rounded outward to "
            "the tick; size a quarter of the volume"
        )


@dataclasses.dataclass(frozen=True)
class History:
    quotes: tuple[domain.Quote, ...]
    kind: str
    """``ticks`` or ``bars``."""
    model: str
    """How the file became quotes, for the report."""
    sha256: str
    source: str
    """The file's name (not its path: the report must not depend on where it lies)."""

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(sorted({q.symbol for q in self.quotes}))


def _parse_ts(text: str, line: int) -> datetime:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError as error:
        raise DataError(f"line {line}, ts: {error}") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _decimal(row: dict[str, str], column: str, line: int) -> Decimal:
    try:
        value = Decimal(row[column])
    except (InvalidOperation, TypeError):
        raise DataError(f"line {line}, {column}: not a decimal: {row[column]!r}") from None
    if not value.is_finite() or value < 0:
        raise DataError(f"line {line}, {column}: must be a finite number >= 0, got {row[column]!r}")
    return value


def _quote(
    symbol: str, price: Decimal, size: Decimal, ts: datetime, *, tick: Decimal, lot: Decimal, spread: Decimal
) -> domain.Quote:
    with decimal.localcontext() as context:
        context.prec = 40
        half = price * spread / 20_000
        bid = max(decimals.round_to_step(price - half, tick, decimal.ROUND_FLOOR), tick)
        ask = max(decimals.round_to_step(price + half, tick, decimal.ROUND_CEILING), bid + tick)
        quarter = decimals.round_to_step(size / 4, lot, decimal.ROUND_FLOOR)
    return domain.Quote(symbol=symbol, bid=bid, ask=ask, last=price, size=quarter, ts=ts)


def bar_quotes(
    *,
    symbol: str,
    start: datetime,
    open_: Decimal,
    high: Decimal,
    low: Decimal,
    close: Decimal,
    volume: Decimal,
    model: BarModel,
    tick: Decimal,
    lot: Decimal,
) -> list[domain.Quote]:
    """The four quotes of one bar (see the module docstring)."""
    first, second = (low, high) if close >= open_ else (high, low)
    step = model.timeframe / 3
    points = (
        (start, open_),
        (start + step, first),
        (start + 2 * step, second),
        (start + model.timeframe - timedelta(milliseconds=1), close),
    )
    return [
        _quote(symbol, price, volume, ts, tick=tick, lot=lot, spread=model.spread_bps) for ts, price in points
    ]


def _read_bars(
    lines: list[str], model: BarModel, sizes: Callable[[str], tuple[Decimal, Decimal]]
) -> Iterator[domain.Quote]:
    reader = csv.DictReader(lines)
    for row in reader:
        line = reader.line_num
        symbol = (row["symbol"] or "").strip().upper()
        if not symbol:
            raise DataError(f"line {line}, symbol: empty")
        values = {c: _decimal(row, c, line) for c in ("open", "high", "low", "close", "volume")}
        if (
            not values["low"]
            <= min(values["open"], values["close"])
            <= max(values["open"], values["close"])
            <= values["high"]
        ):
            raise DataError(f"line {line}, high/low: the bar's range must contain its open and close")
        tick, lot = sizes(symbol)
        yield from bar_quotes(
            symbol=symbol,
            start=_parse_ts(row["ts"], line),
            open_=values["open"],
            high=values["high"],
            low=values["low"],
            close=values["close"],
            volume=values["volume"],
            model=model,
            tick=tick,
            lot=lot,
        )


def _cell(value: object) -> str:
    """One Parquet value as the CSV text it stands for. A float is written as its shortest
    round-trip repr (what a CSV export shows), so ``0.1`` stays ``0.1``, never 0.1000000000000000055."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def parquet_lines(raw: bytes, path: Path) -> list[str]:
    """A Parquet file with the tick or bar columns, as the CSV lines it stands for (header
    first), so that both formats go through one parser and one set of checks: a "line N" in an
    error is row N - 1 of the table. Prices may be strings, decimals or floats; ``ts`` a
    timestamp (naive means UTC) or an ISO-8601 string."""
    import pyarrow
    import pyarrow.parquet

    try:
        table = pyarrow.parquet.read_table(pyarrow.BufferReader(raw))
    except (pyarrow.ArrowException, OSError) as error:
        raise DataError(f"{path}: not a readable Parquet file: {error}") from None
    names = [str(name) for name in table.column_names]
    columns = [table.column(name).to_pylist() for name in names]
    output = io.StringIO()
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow(names)
    writer.writerows([_cell(value) for value in row] for row in zip(*columns, strict=True))
    return output.getvalue().splitlines()


def load(
    path: Path,
    *,
    sizes: Callable[[str], tuple[Decimal, Decimal]],
    model: BarModel,
    start: datetime | None = None,
    end: datetime | None = None,
) -> History:
    """Every quote of ``path`` in ``[start, end)``, in time order. ``sizes(symbol)`` is (tick, lot)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error.strerror}") from None
    if path.suffix.lower() == ".parquet":
        lines = parquet_lines(raw, path)
    else:
        try:
            lines = raw.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text") from None
    header = next(csv.reader(lines[:1]), [])
    columns = {c.strip() for c in header}
    try:
        if set(BAR_COLUMNS) <= columns:
            kind, description = "bars", model.describe()
            quotes = list(_read_bars(lines, model, sizes))
        elif set(replay.COLUMNS) <= columns:
            kind, description = "ticks", "ticks replayed as recorded (bid, ask, last, size)"
            quotes = list(replay.read_ticks(lines))
        else:
            raise DataError(
                f"header: expected tick columns ({','.join(replay.COLUMNS)}) "
                f"or bar columns ({','.join(BAR_COLUMNS)}), got {','.join(header)}"
            )
    except (DataError, replay.ReplayError) as error:
        raise DataError(f"{path}: {error}") from None
    quotes = [q for q in quotes if (start is None or q.ts >= start) and (end is None or q.ts < end)]
    if not quotes:
        raise DataError(f"{path}: no quotes between --from and --to")
    quotes.sort(key=lambda q: q.ts)
    return History(
        quotes=tuple(quotes),
        kind=kind,
        model=description,
        sha256=hashlib.sha256(raw).hexdigest(),
        source=path.name,
    )
