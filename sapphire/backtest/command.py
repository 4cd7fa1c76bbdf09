"""``sapphire backtest``: read the plan and the data, replay with a progress bar, write the report.

The thin shell around :mod:`replay` and :mod:`report`: every user mistake (a bad file, a
malformed row, an empty period) is a :class:`replay.BacktestError` with one line naming the option.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sapphire.backtest import data, html, replay, report
from sapphire.up import plan as plan_module
from sapphire.up import setup

PROGRESS_EVERY = 5000
"""Quotes between redraws of the progress bar (a redraw per quote would cost more than the replay)."""


@dataclasses.dataclass(frozen=True)
class Options:
    path: Path
    data: Path
    start: datetime | None = None
    end: datetime | None = None
    timeframe_seconds: int = 60
    spread_bps: Decimal = Decimal(2)
    sample_seconds: int = 60
    output: Path = Path("backtest-report")
    progress: bool = True


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO-8601 date or time (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise replay.BacktestError(f"{option}: not an ISO-8601 date or time: {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def load(options: Options) -> replay.Backtest:
    try:
        plan = plan_module.load_plan(options.path)
    except plan_module.PlanError as error:
        raise replay.BacktestError(f"-f: {error}") from None
    if options.start is not None and options.end is not None and options.start >= options.end:
        raise replay.BacktestError("--from: must be before --to")
    catalog: dict[str, tuple[Decimal, Decimal]] = {}

    def sizes(symbol: str) -> tuple[Decimal, Decimal]:
        if symbol not in catalog:
            (instrument,) = setup.instruments_for((symbol,))
            catalog[symbol] = (instrument.tick_size, instrument.lot_size)
        return catalog[symbol]

    model = data.BarModel(
        timeframe=timedelta(seconds=options.timeframe_seconds), spread_bps=options.spread_bps
    )
    try:
        history = data.load(options.data, sizes=sizes, model=model, start=options.start, end=options.end)
    except data.DataError as error:
        raise replay.BacktestError(f"--data: {error}") from None
    return replay.Backtest(plan, history, replay.api_settings(), sample_seconds=options.sample_seconds)


def run(options: Options, console: Console) -> dict[str, Any]:
    """Replay, write ``report.json`` (and ``report.html``) under ``options.output``, return the report."""
    backtest = load(options)
    total = len(backtest.history.quotes)
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not options.progress,
        transient=True,
    ) as bar:
        task = bar.add_task("replay", total=total)
        seen = [0]

        def advance(count: int) -> None:
            seen[0] += count
            if seen[0] >= PROGRESS_EVERY:
                bar.advance(task, seen[0])
                seen[0] = 0

        recording = asyncio.run(backtest.run(advance))
        bar.advance(task, seen[0])
    built = report.build(backtest, recording)
    try:
        options.output.mkdir(parents=True, exist_ok=True)
        (options.output / "report.json").write_text(report.dumps(built), encoding="utf-8")
        (options.output / "report.html").write_text(html.render(built), encoding="utf-8")
    except OSError as error:
        raise replay.BacktestError(f"--output: cannot write {options.output}: {error.strerror}") from None
    return built
