"""CSV replay: ``symbol,bid,ask,last,size,ts`` rows (with that header) as tick batches.

``shift_to`` moves every timestamp by the same amount so the first tick lands at that
time: replayed history then looks live to the stale-quote check while keeping its pacing.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from sapphire.trader_api.core import domain

COLUMNS = ("symbol", "bid", "ask", "last", "size", "ts")


class ReplayError(ValueError):
    """A malformed row; the message names the line and the column."""


def read_ticks(lines: Iterable[str], *, shift_to: datetime | None = None) -> Iterator[domain.Quote]:
    reader = csv.DictReader(lines)
    missing = [column for column in COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise ReplayError(f"header: missing column(s) {', '.join(missing)}")
    offset = None
    for row in reader:
        line = reader.line_num
        try:
            ts = datetime.fromisoformat(row["ts"])
        except ValueError as error:
            raise ReplayError(f"line {line}, ts: {error}") from None
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        if shift_to is not None:
            offset = offset if offset is not None else shift_to - ts
            ts = ts + offset
        values = {}
        for column in ("bid", "ask", "last", "size"):
            try:
                values[column] = Decimal(row[column])
            except InvalidOperation:
                raise ReplayError(f"line {line}, {column}: not a decimal: {row[column]!r}") from None
        yield domain.Quote(symbol=row["symbol"].strip().upper(), ts=ts, **values)
