"""The shelf of finished backtests: report directories the dashboard lists and links to.

``backtest_reports_dir`` holds one directory per backtest, named after it, with the
``report.json`` (and ``report.html``) that ``sapphire backtest -o DIR/NAME`` writes, or that a
BacktestRun's pod writes to its report claim under the run's name. A BacktestRun split into
slices (``spec.parallelism``) writes one report per slice, in ``NAME/1``, ``NAME/2``...: each
is listed as a backtest of its own, with its slice number. The shelf reads only the
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


def _read(name: str, slice: int | None, directory: Path, stamp: datetime) -> Backtest:
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
            slice=slice,
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        reason = f"{type(error).__name__}: {error}" if not isinstance(error, KeyError) else f"no {error}"
        return Backtest(
            name=name,
            finished_at=stamp,
            headline=Headline(error=f"report.json unreadable: {reason}"),
            slice=slice,
        )


def _slices(directory: Path) -> list[tuple[int, Path]]:
    """The slices' report directories of a split run, in slice order."""
    numbers = (int(child.name) for child in directory.iterdir() if child.name.isdigit())
    return [(n, directory / str(n)) for n in sorted(numbers) if 1 <= n <= MAX_PARALLELISM]


class Shelf:
    """The backtests under ``root`` (None: none), newest first."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._seen: dict[tuple[str, int | None], tuple[int, Backtest]] = {}

    def list(self) -> list[Backtest]:
        if self.root is None or not self.root.is_dir():
            return []
        found: list[Backtest] = []
        for directory in self.root.iterdir():
            if not _NAME.match(directory.name) or not directory.is_dir():
                continue  # not a backtest: a stray file, a lost+found
            whole = (directory / "report.json").is_file()
            for slice, folder in [(None, directory)] if whole else _slices(directory):
                report = folder / "report.json"
                if not report.is_file():
                    continue  # a half-written run, or a slice still running
                mtime = report.stat().st_mtime_ns
                cached = self._seen.get((directory.name, slice))
                if cached is None or cached[0] != mtime:
                    stamp = datetime.fromtimestamp(mtime / 1e9, tz=UTC)
                    cached = (mtime, _read(directory.name, slice, folder, stamp))
                    self._seen[(directory.name, slice)] = cached
                found.append(cached[1])
        return sorted(found, key=lambda b: (b.finished_at, b.name, b.slice or 0), reverse=True)

    def html(self, name: str, slice: int | None = None) -> Path:
        """The HTML report of backtest ``name`` (of its ``slice``, when the run was split);
        NotFoundError when there is none."""
        if not _NAME.match(name):
            raise errors.FieldError(["path", "name"], f"not a backtest name (pattern {NAME_PATTERN})")
        if self.root is None:
            raise errors.NotFoundError("no backtests are listed: SAPPHIRE_BACKTEST_REPORTS_DIR is not set")
        path = self.root / name / (str(slice) if slice is not None else "") / "report.html"
        if not path.is_file():
            of = f"slice {slice} of backtest {name!r}" if slice is not None else f"backtest {name!r}"
            raise errors.NotFoundError(f"{of} has no HTML report")
        return path
