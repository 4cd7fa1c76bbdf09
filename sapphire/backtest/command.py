"""``sapphire backtest``: read the plan and the data, replay with a progress bar, write the report.

The thin shell around :mod:`replay` and :mod:`report`: every user mistake (a bad file, a
malformed row, an empty period) is a :class:`replay.BacktestError` with one line naming the option.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from sapphire import config
from sapphire.agents.llm import cache as answer_cache
from sapphire.backtest import data, html, replay, report
from sapphire.up import plan as plan_module
from sapphire.up import setup

PROGRESS_EVERY = 5000
"""Quotes between redraws of the progress bar (a redraw per quote would cost more than the replay)."""

DOWNLOAD_ATTEMPTS = 4
DOWNLOAD_TIMEOUT_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class Options:
    path: Path | None
    data: str | Path
    """A file, or an http(s) URL downloaded before the replay."""
    agents_env: str | None = None
    """Read the TradingAgent YAML from this environment variable instead of ``path`` (the
    BacktestRun pod receives its agents so)."""
    data_sha256: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    timeframe_seconds: int = 60
    spread_bps: Decimal = Decimal(2)
    sample_seconds: int = 60
    output: Path = Path("backtest-report")
    progress: bool = True
    llm_cache: Path | None = None
    """Answer agents' ``spec.model`` from this directory (see :mod:`sapphire.agents.llm.cache`)."""
    llm_miss: answer_cache.OnMiss = "abstain"


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO-8601 date or time (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise replay.BacktestError(f"{option}: not an ISO-8601 date or time: {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def fetch(source: str | Path, directory: Path) -> Path:
    """``source`` as a local file: a path as it is; an http(s) URL downloaded into ``directory``,
    keeping the URL's file name (its suffix says CSV or Parquet). Connection failures and 5xx
    answers are retried with backoff; any other answer but 200 fails at once."""
    if isinstance(source, Path) or not source.startswith(("http://", "https://")):
        return Path(source)
    shown = config.redact_url(source)
    target = directory / (Path(urllib.parse.urlsplit(source).path).name or "data.csv")
    problem = ""
    for attempt in range(DOWNLOAD_ATTEMPTS):
        if attempt:
            time.sleep(2 ** (attempt - 1))  # wall-clock backoff of a download, outside the replay
        try:
            with httpx.stream(
                "GET", source, timeout=DOWNLOAD_TIMEOUT_SECONDS, follow_redirects=True
            ) as answer:
                if answer.status_code == 200:
                    with target.open("wb") as output:
                        for chunk in answer.iter_bytes():
                            output.write(chunk)
                    return target
                problem = f"HTTP {answer.status_code}"
                if answer.status_code < 500:
                    break
        except httpx.HTTPError as error:
            problem = f"{type(error).__name__}: {error}"
    raise replay.BacktestError(f"--data: cannot download {shown}: {config.redact_url(problem)}")


def parse_spread(value: str) -> Decimal:
    """``--spread-bps``: a decimal in [0, 1000], exact (never through a float)."""
    try:
        spread = Decimal(value)
    except ArithmeticError:
        raise replay.BacktestError(f"--spread-bps: not a decimal: {value!r}") from None
    if not spread.is_finite() or not 0 <= spread <= 1000:
        raise replay.BacktestError(f"--spread-bps: must be between 0 and 1000, got {value}")
    return spread


def load(options: Options, scratch: Path) -> replay.Backtest:
    """The backtest of ``options``; ``scratch`` holds what was downloaded or written for it."""
    path, option = options.path, "-f"
    if options.agents_env is not None:
        option = f"--agents-env {options.agents_env}"
        text = os.environ.get(options.agents_env)
        if not text:
            raise replay.BacktestError(f"{option}: the environment variable is not set or empty")
        path = scratch / "agents.yaml"
        path.write_text(text, encoding="utf-8")
    if path is None:
        raise replay.BacktestError("-f: give the TradingAgent YAML (or --agents-env)")
    try:
        plan = plan_module.load_plan(path)
    except plan_module.PlanError as error:
        raise replay.BacktestError(f"{option}: {error}") from None
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
    source = fetch(options.data, scratch)
    try:
        history = data.load(source, sizes=sizes, model=model, start=options.start, end=options.end)
    except data.DataError as error:
        # Name the URL the user gave, not the scratch file it was downloaded to.
        shown = config.redact_url(str(options.data))
        raise replay.BacktestError(f"--data: {str(error).replace(str(source), shown)}") from None
    if options.data_sha256 is not None and history.sha256 != options.data_sha256.lower():
        raise replay.BacktestError(
            f"--data-sha256: the data's SHA-256 is {history.sha256}, not {options.data_sha256}"
        )
    return replay.Backtest(
        plan,
        history,
        replay.api_settings(),
        sample_seconds=options.sample_seconds,
        model_answers=model_answers(options),
    )


def parse_on_miss(value: str) -> answer_cache.OnMiss:
    """``--llm-miss``: abstain or call."""
    for choice in answer_cache.ON_MISS_CHOICES:
        if value == choice:
            return choice
    raise replay.BacktestError(f"--llm-miss: expected abstain or call, got {value!r}")


def model_answers(options: Options) -> replay.ModelAnswers | None:
    """``--llm-cache``/``--llm-miss`` as the replay's model answers; None: models are left out."""
    if options.llm_cache is None:
        if options.llm_miss == "call":
            raise replay.BacktestError("--llm-miss: call stores answers, so it needs --llm-cache DIR")
        return None
    try:
        return replay.ModelAnswers(answer_cache.AnswerCache(options.llm_cache), options.llm_miss)
    except answer_cache.CacheError as error:
        raise replay.BacktestError(str(error)) from None


def run(options: Options, console: Console) -> dict[str, Any]:
    """Replay, write ``report.json`` (and ``report.html``) under ``options.output``, return the report."""
    with tempfile.TemporaryDirectory(prefix="sapphire-backtest-") as scratch:
        backtest = load(options, Path(scratch))
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

        try:
            recording = asyncio.run(backtest.run(advance))
        except answer_cache.CacheError as error:
            raise replay.BacktestError(str(error)) from None
        bar.advance(task, seen[0])
    built = report.build(backtest, recording)
    try:
        options.output.mkdir(parents=True, exist_ok=True)
        (options.output / "report.json").write_text(report.dumps(built), encoding="utf-8")
        (options.output / "report.html").write_text(html.render(built), encoding="utf-8")
    except OSError as error:
        raise replay.BacktestError(f"--output: cannot write {options.output}: {error.strerror}") from None
    return built
