"""Parquet history: the same columns as CSV, typed as an exchange export types them (float
prices, timestamp ``ts``), gives exactly the quotes of the CSV, and the same checks."""

from __future__ import annotations

import csv
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow
import pyarrow.parquet
import pytest

from sapphire.backtest import data, sample

SIZES = {"BTC-USD": (Decimal("0.01"), Decimal("0.0001"))}


def sizes(symbol: str) -> tuple[Decimal, Decimal]:
    return SIZES.get(symbol, (Decimal("0.01"), Decimal("0.0001")))


def as_parquet(csv_path: Path, parquet_path: Path) -> None:
    """The CSV as pyarrow would store a ccxt/pandas export: float64 prices, timestamp[ms, UTC]."""
    with csv_path.open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    table = pyarrow.table(
        {
            "symbol": [row["symbol"] for row in rows],
            "ts": pyarrow.array(
                [datetime.fromisoformat(row["ts"]) for row in rows], pyarrow.timestamp("ms", "UTC")
            ),
            **{
                column: [float(row[column]) for row in rows]
                for column in ("open", "high", "low", "close", "volume")
            },
        }
    )
    pyarrow.parquet.write_table(table, parquet_path)


def test_parquet_bars_give_exactly_the_quotes_of_the_same_csv(tmp_path: Path) -> None:
    csv_path, parquet_path = tmp_path / "bars.csv", tmp_path / "bars.parquet"
    csv_path.write_text(sample.synthetic_bars(days=0.05), encoding="utf-8")
    as_parquet(csv_path, parquet_path)
    from_csv = data.load(csv_path, sizes=sizes, model=data.BarModel())
    from_parquet = data.load(parquet_path, sizes=sizes, model=data.BarModel())
    assert len(from_csv.quotes) > 100
    assert from_parquet.quotes == from_csv.quotes  # floats went back to the CSV's decimals exactly
    assert (from_parquet.kind, from_parquet.source) == ("bars", "bars.parquet")
    assert from_parquet.sha256 != from_csv.sha256  # the record names the file that was replayed


def test_a_malformed_parquet_bar_names_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    table = pyarrow.table(
        {
            "symbol": ["BTC-USD", "BTC-USD"],
            "ts": ["2026-01-05T00:00:00", "2026-01-05T00:01:00"],
            "open": [100.0, 100.0],
            "high": [101.0, 98.0],
            "low": [99.0, 99.0],
            "close": [100.0, 100.0],
            "volume": [1.0, 1.0],
        }
    )
    pyarrow.parquet.write_table(table, path)
    with pytest.raises(data.DataError, match=r"line 3, high/low: the bar's range must contain"):
        data.load(path, sizes=sizes, model=data.BarModel())


def test_a_file_that_is_not_parquet_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    path.write_text("symbol,ts\n", encoding="utf-8")
    with pytest.raises(data.DataError, match=r"bars.parquet: not a readable Parquet file"):
        data.load(path, sizes=sizes, model=data.BarModel())
