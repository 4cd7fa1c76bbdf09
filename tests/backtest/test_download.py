"""``sapphire data download``: the real ccxt client pages an exchange's klines into Parquet
that ``sapphire backtest --data`` reads. The exchange is the tests' fake Binance
(``tests/support/fake_binance.py``), in Binance's own wire format."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from sapphire.backtest import data, download
from sapphire.trader_api.core.symbols import SymbolMap
from sapphire.trader_api.services import exchange as exchanges
from sapphire.trader_api.settings import TraderApiSettings
from tests.support import fake_binance

T0 = datetime(2026, 1, 5, tzinfo=UTC)
MINUTE_MS = 60_000
BARS = 1500  # more than one page of 1000
MOMENTUM = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "momentum.yaml"


@pytest.fixture
async def fake() -> AsyncIterator[fake_binance.FakeBinance]:
    async with fake_binance.running_fake_binance() as exchange:
        start = int(T0.timestamp() * 1000)
        btc = [Decimal("65000.00") + Decimal(i % 37) for i in range(BARS)]
        eth = [Decimal("3200.00") - Decimal(i % 11) / 10 for i in range(BARS)]
        exchange.add_klines("BTCUSDT", start_ms=start, interval_ms=MINUTE_MS, closes=btc)
        exchange.add_klines("ETHUSDT", start_ms=start, interval_ms=MINUTE_MS, closes=eth)
        yield exchange


def settings(fake: fake_binance.FakeBinance) -> TraderApiSettings:
    return TraderApiSettings(dev_mode=True, ccxt_api_origin=fake.url)


async def test_bars_are_paged_into_parquet_that_a_backtest_reads(
    fake: fake_binance.FakeBinance, tmp_path: Path
) -> None:
    until = T0 + timedelta(minutes=BARS)
    done = await download.download(
        exchange_id="binance", symbols=["BTC-USD", "ETH-USD"], timeframe="1m", since=T0, until=until,
        output=tmp_path / "bars.parquet", settings=settings(fake),
    )  # fmt: skip
    assert done.bars == {"BTC-USD": BARS, "ETH-USD": BARS}
    assert (done.first, done.last) == (T0, until - timedelta(minutes=1))
    klines = [p for m, p in fake.requests if p == "/api/v3/klines"]
    assert len(klines) == 4  # two pages per symbol
    history = data.load(
        done.path, sizes=lambda _: (Decimal("0.01"), Decimal("0.0001")), model=data.BarModel()
    )
    assert history.symbols == ("BTC-USD", "ETH-USD")
    assert history.sha256 == done.sha256  # what the command printed is what a backtest records
    assert len(history.quotes) == 4 * 2 * BARS  # four quotes per bar (the documented bar model)
    # Exact prices: the last quote of ETH's first bar is at its close, 3200.00, to the cent.
    eth = [q for q in history.quotes if q.symbol == "ETH-USD"]
    assert eth[3].last == Decimal("3200.00")
    assert eth[3].ts == T0 + timedelta(minutes=1) - timedelta(milliseconds=1)


async def test_a_bar_that_has_not_closed_is_not_written(
    fake: fake_binance.FakeBinance, tmp_path: Path
) -> None:
    until = T0 + timedelta(minutes=100, seconds=30)  # bar 100 opened, but has not closed
    done = await download.download(
        exchange_id="binance", symbols=["BTC-USD"], timeframe="1m", since=T0, until=until,
        output=tmp_path / "bars.parquet", settings=settings(fake),
    )  # fmt: skip
    assert done.bars == {"BTC-USD": 100}
    assert done.last == T0 + timedelta(minutes=99)


async def test_an_outage_is_retried_with_backoff_then_refused_in_one_line(
    fake: fake_binance.FakeBinance,
) -> None:
    client = exchanges.build(settings(fake), "binance", setting="--exchange", private=False)
    await client.load_markets()  # the markets are known; then the exchange goes down
    fake.down = True
    waits: list[float] = []

    async def waited(seconds: float) -> None:
        waits.append(seconds)

    try:
        with pytest.raises(download.DownloadError, match=r"--exchange: no answer after 5 attempts: "):
            await download.fetch_bars(
                client, symbols=["BTC-USD"], symbol_map=SymbolMap({"USD": "USDT"}), timeframe="1m",
                since=T0, until=T0 + timedelta(hours=1), sleep=waited,
            )  # fmt: skip
    finally:
        await client.close()
    assert waits == [1.0, 2.0, 4.0, 8.0]


@pytest.mark.parametrize(
    ("symbols", "timeframe", "message"),
    [
        (["BTC-USD"], "7m", "--timeframe: binance has no timeframe '7m'"),
        (["DOGE-USD"], "1m", "--symbols: the exchange has no market DOGE/USDT"),
        (["AAPL"], "1m", "--symbols: 'AAPL' has no quote currency"),
    ],
)
async def test_a_bad_option_is_one_line_naming_it(
    fake: fake_binance.FakeBinance, tmp_path: Path, symbols: list[str], timeframe: str, message: str
) -> None:
    with pytest.raises(download.DownloadError, match=message):
        await download.download(
            exchange_id="binance", symbols=symbols, timeframe=timeframe, since=T0,
            until=T0 + timedelta(hours=1), output=tmp_path / "bars.parquet", settings=settings(fake),
        )  # fmt: skip
    assert not (tmp_path / "bars.parquet").exists()


async def test_the_command_downloads_then_backtests(fake: fake_binance.FakeBinance, tmp_path: Path) -> None:
    sapphire = str(Path(sys.executable).parent / "sapphire")
    env = {**os.environ, "SAPPHIRE_CCXT_API_ORIGIN": fake.url}
    output = tmp_path / "btc.parquet"
    process = await asyncio.create_subprocess_exec(
        sapphire, "data", "download", "--exchange", "binance", "--symbols", "BTC-USD", "--since",
        "2026-01-05T00:00", "--until", "2026-01-05T06:00", "-o", str(output),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    printed = (await process.communicate())[0].decode()
    assert process.returncode == 0, printed
    assert "BTC-USD: 360 bars" in printed
    assert f"wrote {output}" in printed
    momentum = MOMENTUM
    process = await asyncio.create_subprocess_exec(
        sapphire, "backtest", "-f", str(momentum), "--data", str(output), "-o", str(tmp_path / "report"),
        "--no-progress", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    printed = (await process.communicate())[0].decode()
    assert process.returncode == 0, printed
    assert "total return" in printed
