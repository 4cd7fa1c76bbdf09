"""The shelf of finished backtests: report directories the dashboard lists and links to.

``backtest_reports_dir`` holds one directory per backtest, named after it, with the
``report.json`` (and ``report.html``) that ``sapphire backtest -o DIR/NAME`` writes, or that a
BacktestRun's pod writes to its report claim under the run's name. A BacktestRun split into
slices (``spec.parallelism``) writes one report per slice, in ``NAME/1``, ``NAME/2``...: each
is listed as a backtest of its own, with its slice number. A grid of parameters writes one
report per trial, in ``NAME/trial-1``, ``NAME/trial-2``...: each is listed with its trial
number. The shelf reads only the
headline of each report (:class:`~sapphire.domain.headline.Headline`, the figures
``kubectl get backtestruns`` shows), and keeps it until the file changes. A report that cannot
be read is listed with the reason, never skipped in silence.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sapphire.domain.headline import Headline
from sapphire.resources import backtestrun
from sapphire.resources.backtestrun import MAX_PARALLELISM
from sapphire.trader_api import errors

NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?$"
"""A backtest's directory name: a Kubernetes object name, or any such local name."""
_NAME = re.compile(NAME_PATTERN)


@dataclasses.dataclass(frozen=True)
class Backtest:
    name: str
    finished_at: datetime
    """When its report.json was written."""
    headline: Headline
    data_from: str | None = None
    data_to: str | None = None
    symbols: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    has_html: bool = False
    slice: int | None = None
    """The slice of a split BacktestRun this report is of (1-based); None for a whole run."""
    trial: int | None = None
    """The trial of a BacktestRun's grid this report is of (1-based); None for a whole run."""


@dataclasses.dataclass(frozen=True)
class Part:
    """Which part of a BacktestRun a report is of: a slice of its period, a trial of its grid,
    or neither (the whole run)."""

    slice: int | None = None
    trial: int | None = None

    def folder(self) -> str:
        """Its report folder under the run's."""
        if self.trial is not None:
            return backtestrun.trial_folder(self.trial)
        return str(self.slice) if self.slice is not None else ""

    def describe(self, name: str) -> str:
        if self.trial is not None:
            return f"trial {self.trial} of backtest {name!r}"
        return f"slice {self.slice} of backtest {name!r}" if self.slice is not None else f"backtest {name!r}"


WHOLE = Part()


def _read(name: str, part: Part, directory: Path, stamp: datetime) -> Backtest:
    path = directory / "report.json"
    try:
        report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        headline = Headline.of_report(report)
        data = report["data"]
        return Backtest(
            name=name,
            finished_at=stamp,
            headline=headline,
            data_from=data["from"],
            data_to=data["to"],
            symbols=tuple(data["symbols"]),
            agents=tuple(agent["name"] for agent in report["agents"]),
            has_html=(directory / "report.html").is_file(),
            slice=part.slice,
            trial=part.trial,
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        reason = f"{type(error).__name__}: {error}" if not isinstance(error, KeyError) else f"no {error}"
        return Backtest(
            name=name,
            finished_at=stamp,
            headline=Headline(error=f"report.json unreadable: {reason}"),
            slice=part.slice,
            trial=part.trial,
        )


def _parts(directory: Path) -> list[tuple[Part, Path]]:
    """The report directories of a split run's slices, then of a grid's trials, in order."""
    slices, trials = [], []
    for child in directory.iterdir():
        if child.name.isascii() and child.name.isdigit() and 1 <= int(child.name) <= MAX_PARALLELISM:
            slices.append(int(child.name))
        elif (trial := backtestrun.trial_of_folder(child.name)) is not None:
            trials.append(trial)
    parts = [Part(slice=n) for n in sorted(slices)] + [Part(trial=n) for n in sorted(trials)]
    return [(part, directory / part.folder()) for part in parts]


class Shelf:
    """The backtests under ``root`` (None: none), newest first."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._seen: dict[tuple[str, Part], tuple[int, Backtest]] = {}

    def list(self) -> list[Backtest]:
        if self.root is None or not self.root.is_dir():
            return []
        found: list[Backtest] = []
        for directory in self.root.iterdir():
            if not _NAME.match(directory.name) or not directory.is_dir():
                continue  # not a backtest: a stray file, a lost+found
            whole = (directory / "report.json").is_file()
            for part, folder in [(WHOLE, directory)] if whole else _parts(directory):
                report = folder / "report.json"
                if not report.is_file():
                    continue  # a half-written run, or a slice or trial still running
                mtime = report.stat().st_mtime_ns
                cached = self._seen.get((directory.name, part))
                if cached is None or cached[0] != mtime:
                    stamp = datetime.fromtimestamp(mtime / 1e9, tz=UTC)
                    cached = (mtime, _read(directory.name, part, folder, stamp))
                    self._seen[(directory.name, part)] = cached
                found.append(cached[1])
        return sorted(found, key=lambda b: (b.finished_at, b.name, b.slice or 0, b.trial or 0), reverse=True)

    def html(self, name: str, part: Part = WHOLE) -> Path:
        """The HTML report of backtest ``name`` (of one ``part``: a slice of a split run, a
        trial of a grid); NotFoundError when there is none."""
        if not _NAME.match(name):
            raise errors.FieldError(["path", "name"], f"not a backtest name (pattern {NAME_PATTERN})")
        if self.root is None:
            raise errors.NotFoundError("no backtests are listed: SAPPHIRE_BACKTEST_REPORTS_DIR is not set")
        path = self.root / name / part.folder() / "report.html"
        if not path.is_file():
            raise errors.NotFoundError(f"{part.describe(name)} has no HTML report")
        return path
