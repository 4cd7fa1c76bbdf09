"""CSV replay: ``symbol,bid,ask,last,size,ts`` rows (with that header) as ticks.

The recorded timestamps are kept: history replays as history. ``shift`` moves every
timestamp by one fixed offset; :func:`shift_to` picks the offset that lands the first tick
at a given time (``sapphire feed --source replay --shift now``), so replayed history looks
live to the stale-quote check while keeping its own spacing.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

import msgspec

from sapphire.trader_api.core import domain

COLUMNS = ("symbol", "bid", "ask", "last", "size", "ts")


class ReplayError(ValueError):
    """A malformed row; the message names the line and the column."""


def read_ticks(lines: Iterable[str], *, shift: timedelta = timedelta(0)) -> Iterator[domain.Quote]:
    reader = csv.DictReader(lines)
    missing = [column for column in COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise ReplayError(f"header: missing column(s) {', '.join(missing)}")
    for row in reader:
        line = reader.line_num
        try:
            ts = datetime.fromisoformat(row["ts"])
        except ValueError as error:
            raise ReplayError(f"line {line}, ts: {error}") from None
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        ts = ts + shift
        values = {}
        for column in ("bid", "ask", "last", "size"):
            try:
                values[column] = Decimal(row[column])
            except InvalidOperation:
                raise ReplayError(f"line {line}, {column}: not a decimal: {row[column]!r}") from None
        yield domain.Quote(symbol=row["symbol"].strip().upper(), ts=ts, **values)


def shift_to(quotes: Iterable[domain.Quote], start: datetime) -> Iterator[domain.Quote]:
    """``quotes`` moved by the one offset that puts the first of them at ``start``."""
    offset: timedelta | None = None
    for quote in quotes:
        if offset is None:
            offset = start - quote.ts
        yield msgspec.structs.replace(quote, ts=quote.ts + offset)
