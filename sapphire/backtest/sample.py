"""The synthetic sample dataset: OHLCV bars from the seeded simulator, so anyone can backtest.

The bars are *synthetic*: :func:`sapphire.trader_api.feeds.simulated.simulate` (a seeded,
regime-switching random walk) sampled every ``tick_seconds`` and folded into bars of
``bar_seconds``. Same seed, same bytes. ``python -m sapphire.backtest.sample OUT.csv``
regenerates the file shipped in ``manifests/examples/data/``.
"""

from __future__ import annotations

import csv
import io
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sapphire.backtest import data
from sapphire.trader_api.feeds import simulated

INSTRUMENTS = (
    simulated.SimulatedInstrument(
        "BTC-USD", Decimal(60000), Decimal("0.01"), Decimal("0.0001"), Decimal("0.05")
    ),
    simulated.SimulatedInstrument("ETH-USD", Decimal(3000), Decimal("0.01"), Decimal("0.001"), Decimal("1")),
    simulated.SimulatedInstrument("SOL-USD", Decimal(150), Decimal("0.01"), Decimal("0.0001"), Decimal("20")),
)
START = datetime(2026, 1, 5, tzinfo=UTC)


def synthetic_bars(*, seed: int = 7, days: float = 1.0, bar_seconds: int = 60, tick_seconds: int = 10) -> str:
    """CSV text of ``symbol,ts,open,high,low,close,volume`` rows (bar starts, UTC)."""
    ticks_per_bar = bar_seconds // tick_seconds
    bars = int(days * 86400) // bar_seconds
    feed = simulated.simulate(INSTRUMENTS, seed=seed, start=START, step=timedelta(seconds=tick_seconds))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(data.BAR_COLUMNS)
    for index in range(bars):
        window = [next(feed) for _ in range(ticks_per_bar)]
        start = START + timedelta(seconds=index * bar_seconds)
        for position, instrument in enumerate(INSTRUMENTS):
            prices = [batch[position].mid.quantize(instrument.tick_size) for batch in window]
            volume = sum((batch[position].size for batch in window), Decimal(0))
            writer.writerow(
                [
                    instrument.symbol,
                    start.isoformat(),
                    prices[0],
                    max(prices),
                    min(prices),
                    prices[-1],
                    volume,
                ]
            )
    return out.getvalue()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m sapphire.backtest.sample OUT.csv", file=sys.stderr)
        return 2
    Path(argv[0]).write_text(synthetic_bars(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
