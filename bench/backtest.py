"""backtest: quotes per second replayed by ``sapphire backtest`` through the seven example agents.

The history is the simulator's synthetic 1-minute bars on BTC-USD, ETH-USD and SOL-USD (four
quotes per bar, :mod:`sapphire.backtest.data`), the agents are ``manifests/examples/`` (six
analysts and the executor, the paper venue's engine behind it), loaded by the command's own
:func:`sapphire.backtest.command.load`. The clock runs around :meth:`Backtest.run` alone: the
replay, every analyst's observe/assess, the executor's decisions, the orders through the API's
decoding and intake checks and the engine. Reading the CSV and building the report are timed
apart. CPU is this process's own (the replay is one thread, no other process takes part).

The floor is the least any replay of these quotes does, measured in the same run: one pass
over the same quotes grouped by timestamp, building each agent-facing Tick and handing it to
a no-op. The "one year" figure is extrapolated from the measured rate (a year of 1-minute
bars on three symbols is 1,576,800 bars, 6,307,200 quotes); it is not a measured run.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import environment, procstat, report
from sapphire.backtest import command, replay, sample
from sapphire.backtest import report as backtest_report

NAME = "backtest"
EXAMPLES = Path(__file__).resolve().parents[1] / "manifests" / "examples"
YEAR_BARS = 365 * 24 * 60 * 3
QUOTES_PER_BAR = 4


@dataclass(frozen=True)
class Sizes:
    days: float = 1.0
    """Days of synthetic 1-minute bars on three symbols (1 day: 17,280 quotes)."""
    profile_days: float = 0.25


FULL = Sizes()
SMOKE = Sizes(days=0.02, profile_days=0.02)


def _load(data: Path) -> replay.Backtest:
    options = command.Options(path=EXAMPLES, data=data, progress=False)
    return command.load(options, data.parent)


def floor_pass(backtest: replay.Backtest) -> float:
    """Quotes/s of the least a replay does: group by time, build each Tick, hand it on."""
    sink: list[Any] = []
    keep = sink.append
    started = time.perf_counter()
    for _, group in itertools.groupby(backtest.history.quotes, key=lambda q: q.ts):
        for quote in group:
            keep(replay._tick(quote))
        sink.clear()
    return len(backtest.history.quotes) / (time.perf_counter() - started)


def _replay(backtest: replay.Backtest) -> tuple[replay.Recording, float, float]:
    """(recording, wall seconds, CPU seconds of this process) of one replay."""
    cpu = procstat.own_seconds()
    started = time.perf_counter()
    recording = asyncio.run(backtest.run())
    return recording, time.perf_counter() - started, procstat.own_seconds() - cpu


async def run(
    services: environment.Services,
    sizes: Sizes = FULL,
    *,
    results: Path = report.RESULTS,
    profile: bool = True,
) -> report.Report:
    scratch = Path(tempfile.mkdtemp(prefix="sapphire-bench-"))
    data = scratch / "bars.csv"
    data.write_text(sample.synthetic_bars(days=sizes.days), encoding="utf-8")
    started = time.perf_counter()
    backtest = _load(data)
    load_seconds = time.perf_counter() - started
    quotes = len(backtest.history.quotes)
    floor = floor_pass(backtest)
    recording, wall, cpu = await asyncio.to_thread(_replay, backtest)
    started = time.perf_counter()
    built = backtest_report.build(backtest, recording)
    report_seconds = time.perf_counter() - started
    rate = recording.events / wall
    result = report.Report(
        name=NAME, method=__doc__ or "", sizes=asdict(sizes), versions=services.versions(),
        settings={"agents": [agent.name for agent in backtest.plan.agents], "quotes": quotes},
    )  # fmt: skip
    result.figures["quotes_per_s"] = report.Figure(rate, "quotes/s", "replay only, 7 example agents")
    result.figures["cpu_us_per_quote"] = report.Figure(cpu / recording.events * 1e6, "µs", "this process")
    result.figures["cpu_share"] = report.Figure(cpu / wall, "cores", "of the replay's wall time")
    result.figures["load_quotes_per_s"] = report.Figure(quotes / load_seconds, "quotes/s", "CSV -> quotes")
    result.figures["report_seconds"] = report.Figure(report_seconds, "s", "metrics and tables")
    result.figures["fills"] = report.Figure(float(built["metrics"]["fills"]), "fills", "the executor traded")
    year_quotes = YEAR_BARS * QUOTES_PER_BAR
    result.figures["one_year_3_symbols_s"] = report.Figure(
        year_quotes / rate + year_quotes / (quotes / load_seconds), "s", "extrapolated: load + replay"
    )
    result.floor["tick_pass_quotes_per_s"] = report.Figure(floor, "quotes/s", "group, build Tick, no agent")
    result.ratios["replay_over_floor"] = report.Figure(rate / floor, "x")
    result.targets = [
        report.Target("quotes_per_s", ">=", 25_000),
        report.Target("one_year_3_symbols_s", "<=", 90),
    ]
    if profile and result.missed:
        result.profile = await _profile(sizes, scratch, results)
    return result


async def _profile(sizes: Sizes, scratch: Path, results: Path) -> str:
    import pyinstrument

    data = scratch / "profile-bars.csv"
    data.write_text(sample.synthetic_bars(days=sizes.profile_days), encoding="utf-8")
    backtest = _load(data)
    profiler = pyinstrument.Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    try:
        await backtest.run()
    finally:
        profiler.stop()
    header = f"# {NAME}: pyinstrument of one replay, {len(backtest.history.quotes)} quotes\n"
    return report.save_profile(
        results, NAME, [header, profiler.output_text(unicode=True, color=False, show_all=False)]
    )
