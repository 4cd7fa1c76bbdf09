"""``sapphire backtest``: the example agents, executor and paper venue replay history
deterministically, without lookahead, at the venue's stated fees."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from sapphire import cli
from sapphire.agents import market
from sapphire.agents.analysts import base
from sapphire.backtest import command, data, replay, report, sample
from sapphire.trader_api.core import accounting, engine, records

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three hours of synthetic 1-minute bars on the examples' symbols."""
    path = tmp_path_factory.mktemp("data") / "bars.csv"
    path.write_text(sample.synthetic_bars(days=0.125), encoding="utf-8")
    return path


def options(bars: Path, output: Path) -> command.Options:
    return command.Options(path=EXAMPLES, data=bars, output=output, progress=False)


def test_the_same_inputs_give_a_byte_identical_report(bars: Path, tmp_path: Path) -> None:
    first = command.run(options(bars, tmp_path / "a"), Console(quiet=True))
    command.run(options(bars, tmp_path / "b"), Console(quiet=True))
    assert first["metrics"]["fills"] > 10  # the executor really traded: equal reports mean something
    assert (tmp_path / "a" / "report.json").read_bytes() == (tmp_path / "b" / "report.json").read_bytes()


def test_the_books_balance_and_fees_are_the_paper_venue_settings(
    bars: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAPPHIRE_FEE_BPS", "7")
    backtest = command.load(options(bars, Path("unused")), Path("unused"))
    recording = asyncio.run(backtest.run())
    built = report.build(backtest, recording)
    assert built["venue"]["fee_bps"] == "7"
    assert recording.fills
    for fill in recording.fills:
        assert fill.fee == accounting.fee_for(fill.quantity, fill.price, Decimal(7))
    portfolio = recording.final_account.portfolio if recording.final_account else None
    assert portfolio is not None
    # equity - initial = realized + unrealized - fees, exactly, as the engine promises
    assert (
        portfolio.equity - Decimal(1_000_000)
        == portfolio.realized_pnl + portfolio.unrealized_pnl - portfolio.fees
    )
    assert Decimal(built["metrics"]["final_equity"]) == portfolio.equity.quantize(Decimal("1e-8")).normalize()
    assert Decimal(built["metrics"]["fees"]) == sum((f.fee for f in recording.fills), Decimal(0))


def test_the_recording_repr_is_a_summary_not_every_fill(bars: Path) -> None:
    """Python 3.11's asyncio.run formats the main task's repr, its result included, on the way
    out: a repr of every signal, order and fill of a year's replay would cost minutes."""
    backtest = command.load(options(bars, Path("unused")), Path("unused"))
    recording = asyncio.run(backtest.run())
    assert len(recording.fills) > 10
    assert len(recording.signals) > 10
    assert repr(recording) == (
        f"Recording(events={recording.events}, samples={len(recording.samples)}, "
        f"signals={len(recording.signals)}, orders={len(recording.orders)}, "
        f"fills={len(recording.fills)}, rejections={len(recording.rejections)})"
    )


class Clairvoyant(base.Analyst):
    """An analyst that would go long whenever it knew a price from after ``now``."""

    role = "momentum"

    def __init__(self, *, agent: str, model: object = None) -> None:
        super().__init__(agent=agent)
        self.seen: list[datetime] = []
        self.assessments: list[tuple[datetime, datetime]] = []

    def observe(self, tick: market.Tick) -> None:
        self.seen.append(tick.ts)

    def evaluate(self, symbol: str, now: datetime) -> market.Signal | None:
        latest = max(self.seen, default=now)
        self.assessments.append((now, latest))
        if latest <= now:
            return None
        return market.make_signal(
            agent=self.agent,
            role=self.role,
            symbol=symbol,
            score=1.0,
            confidence=1.0,
            horizon_seconds=60,
            rationale="saw the future",
            now=now,
        )


def test_an_analyst_trying_to_look_ahead_gets_nothing(bars: Path) -> None:
    built: list[Clairvoyant] = []

    def factory(role: str, *, agent: str, model: object = None) -> base.Analyst:
        analyst = Clairvoyant(agent=agent)
        built.append(analyst)
        return analyst

    backtest = command.load(options(bars, Path("unused")), Path("unused"))
    backtest = replay.Backtest(backtest.plan, backtest.history, backtest.settings, analyst_factory=factory)
    recording = asyncio.run(backtest.run())
    last_quote = backtest.history.quotes[-1].ts
    assert built
    # The precondition: each analyst was asked many times while later quotes existed, and saw them after.
    assert all(sum(1 for now, _ in a.assessments if now < last_quote) > 50 for a in built)
    assert all(max(a.seen) == last_quote for a in built if a.seen)
    assert all(latest <= now for a in built for now, latest in a.assessments)
    assert not [s for s in recording.signals if s.rationale == "saw the future"]


def test_a_bar_reveals_its_close_only_just_before_it_ends() -> None:
    start = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    quotes = data.bar_quotes(
        symbol="BTC-USD",
        start=start,
        open_=Decimal(100),
        high=Decimal(110),
        low=Decimal(90),
        close=Decimal(105),
        volume=Decimal(8),
        model=data.BarModel(timeframe=timedelta(minutes=1), spread_bps=Decimal(20)),
        tick=Decimal("0.01"),
        lot=Decimal("0.5"),
    )
    assert [(q.ts - start, q.last) for q in quotes] == [
        (timedelta(0), Decimal(100)),
        (timedelta(seconds=20), Decimal(90)),  # a rising bar: low first
        (timedelta(seconds=40), Decimal(110)),
        (timedelta(seconds=59, microseconds=999_000), Decimal(105)),
    ]
    assert (quotes[0].bid, quotes[0].ask, quotes[0].size) == (Decimal("99.90"), Decimal("100.10"), Decimal(2))


def test_the_command_prints_the_summary_and_writes_the_report(bars: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli.app,
        [
            "backtest",
            "-f",
            str(EXAMPLES),
            "--data",
            str(bars),
            "-o",
            str(tmp_path),
            "--no-progress",
            "--from",
            "2026-01-05T01:00",
            "--to",
            "2026-01-05T02:00",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "total return" in result.output
    assert "Per agent" in result.output
    written = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert written["data"]["from"] == "2026-01-05T01:00:00+00:00"
    assert written["data"]["to"] < "2026-01-05T02:00:00+00:00"
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script src=" not in page  # plotly.js is inlined: the file opens offline
    assert "Plotly.newPlot" in page
    for title in (
        "Equity vs buy and hold",
        "Underwater (drawdown)",
        "BTC-USD: mid, entries, exits",
        "Monthly returns",
    ):
        assert title in page


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--from", "yesterday"], "--from: not an ISO-8601 date or time"),
        (["--from", "2026-01-05T02:00", "--to", "2026-01-05T01:00"], "--from: must be before --to"),
        (["--from", "2030-01-01"], "no quotes between --from and --to"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(
    bars: Path, tmp_path: Path, arguments: list[str], message: str
) -> None:
    result = CliRunner().invoke(
        cli.app, ["backtest", "-f", str(EXAMPLES), "--data", str(bars), "-o", str(tmp_path), *arguments]
    )
    assert result.exit_code == 2
    assert message in result.output


def test_a_malformed_bar_names_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "symbol,ts,open,high,low,close,volume\nBTC-USD,2026-01-05T00:00:00,100,101,99,100,1\n"
        "BTC-USD,2026-01-05T00:01:00,100,abc,99,100,1\n",
        encoding="utf-8",
    )
    with pytest.raises(data.DataError, match=r"line 3, high: not a decimal"):
        data.load(path, sizes=lambda _: (Decimal("0.01"), Decimal("0.0001")), model=data.BarModel())


def test_a_replay_makes_no_bars_of_its_bars(bars: Path) -> None:
    backtest = command.load(options(bars, Path("unused")), Path("unused"))
    first = records.ApplyTicks(tuple(backtest.history.quotes[:3]))
    live = engine.Engine(
        records.EngineState(
            account=backtest.engine.account, open_orders=(), idempotency={}, sequence=0, intakes=0
        ),
        venue=backtest.engine.venue,
        instruments=backtest.catalog.get,
        clock=lambda: first.quotes[-1].ts,
    )
    live.apply(first)
    assert live.take_changes().bars, "the live API's engine makes bars of the same ticks"
    recording = asyncio.run(backtest.run())
    assert recording.fills
    assert set(backtest.engine.quotes) == {q.symbol for q in backtest.history.quotes}
    assert backtest.engine.bars == {}
