"""What every benchmark hands back, and how it is shown and stored.

A :class:`Report` carries the figures of one run, the floor measured in the same run and
the ratios between them. Absolute times on a shared two-core machine move by tens of per
cent from one run to the next; the ratio to a floor measured minutes apart on the same
machine moves much less, so it is the number to compare across commits.

``bench/results/<name>.json`` holds the last full run (``make bench``); the smoke tests
write to a temporary folder instead.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Figure:
    """One measured number."""

    value: float
    unit: str
    note: str = ""


@dataclass(frozen=True)
class Target:
    """A bound a figure should respect: ``figure <= limit`` or ``figure >= limit``."""

    figure: str
    """The key in ``Report.figures`` or ``Report.ratios``."""
    bound: Literal["<=", ">="]
    limit: float

    def met(self, value: float) -> bool:
        return value <= self.limit if self.bound == "<=" else value >= self.limit

    def miss(self, value: float) -> float:
        """How far off the target is, as a factor (1.0 = met exactly, 2.0 = twice too slow)."""
        if value <= 0 or self.limit <= 0:
            return math.inf
        return value / self.limit if self.bound == "<=" else self.limit / value


@dataclass
class Report:
    name: str
    method: str
    """How the real path was driven and where the clock starts and stops."""
    sizes: dict[str, Any]
    figures: dict[str, Figure] = field(default_factory=dict)
    floor: dict[str, Figure] = field(default_factory=dict)
    ratios: dict[str, Figure] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None
    """File name (next to the JSON) of the pyinstrument profile, when one was taken."""

    def value(self, key: str) -> float:
        found = self.figures.get(key) or self.ratios.get(key) or self.floor.get(key)
        if found is None:
            raise KeyError(f"{self.name} has no figure {key!r}")
        return found.value

    def target_results(self) -> list[dict[str, Any]]:
        rows = []
        for target in self.targets:
            value = self.value(target.figure)
            rows.append(
                {
                    "figure": target.figure,
                    "bound": target.bound,
                    "limit": target.limit,
                    "value": value,
                    "met": target.met(value),
                    "miss_factor": None if target.met(value) else round(target.miss(value), 2),
                }
            )
        return rows

    @property
    def missed(self) -> bool:
        return any(not row["met"] for row in self.target_results())

    def to_json(self) -> dict[str, Any]:
        def figures(source: dict[str, Figure]) -> dict[str, Any]:
            return {k: {"value": _round(f.value), "unit": f.unit, "note": f.note} for k, f in source.items()}

        return {
            "benchmark": self.name,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "source": source(),
            "versions": {"python": platform.python_version(), **self.versions},
            "sizes": self.sizes,
            "settings": self.settings,
            "method": self.method,
            "figures": figures(self.figures),
            "floor": figures(self.floor),
            "ratios": figures(self.ratios),
            "targets": self.target_results(),
            "profile": self.profile,
        }


def _round(value: float) -> float:
    return float(f"{value:.4g}") if value and math.isfinite(value) else value


def machine() -> dict[str, Any]:
    """CPU count and model, memory and kernel: enough to tell two machines apart."""
    model, memory = "unknown", 0
    cpuinfo, meminfo = Path("/proc/cpuinfo"), Path("/proc/meminfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) // 1024
                break
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_mib": memory,
        "kernel": platform.release(),
        "load_average_1m_at_end": None if load is None else round(load, 2),
    }


def source() -> dict[str, Any]:
    """The commit measured, and whether the code under test differed from it."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "trader_api", "agents", "operator", "migrations", "sapphire")
    return {"commit": git("rev-parse", "HEAD") or "unknown", "uncommitted_changes": bool(changed)}


def latency_figures(samples_ns: Sequence[int], prefix: str = "") -> dict[str, Figure]:
    """p50, p99, p99.9, mean and max of latencies given in nanoseconds, as milliseconds."""
    if not samples_ns:
        raise ValueError("no latency samples")
    ordered = sorted(samples_ns)

    def at(q: float) -> float:
        # Nearest rank: the smallest sample with at least q of the samples at or below it.
        rank = max(0, math.ceil(q * len(ordered)) - 1)
        return ordered[rank] / 1e6

    return {
        f"{prefix}p50": Figure(at(0.50), "ms"),
        f"{prefix}p99": Figure(at(0.99), "ms"),
        f"{prefix}p99.9": Figure(at(0.999), "ms"),
        f"{prefix}mean": Figure(statistics.fmean(ordered) / 1e6, "ms"),
        f"{prefix}max": Figure(ordered[-1] / 1e6, "ms"),
    }


def write(report: Report, directory: Path = RESULTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{report.name}.json"
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return path


def save_profile(directory: Path, name: str, parts: Sequence[str]) -> str:
    """Write ``<name>.profile.txt`` next to the JSON; returns its file name for ``Report.profile``."""
    directory.mkdir(parents=True, exist_ok=True)
    file_name = f"{name}.profile.txt"
    (directory / file_name).write_text("".join(parts))
    return file_name


def read_or_note(path: Path) -> str:
    """A profile a subprocess wrote (then removed), or a note that it wrote none."""
    if not path.exists():
        return "(no profile written)\n"
    text = path.read_text()
    path.unlink()
    return text


def show(report: Report, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{report.name}  ({', '.join(f'{k}={v}' for k, v in report.sizes.items())})")
    table.add_column("kind")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("target")
    targets = {t.figure: t for t in report.targets}
    for kind, source in (("measured", report.figures), ("floor", report.floor), ("ratio", report.ratios)):
        for key, figure in source.items():
            target = targets.get(key)
            verdict = ""
            if target is not None:
                ok = target.met(figure.value)
                verdict = f"{'[green]met' if ok else '[red]MISSED'} ({target.bound} {target.limit:g})"
            table.add_row(kind, key, f"{figure.value:,.4g}", figure.unit, verdict)
    console.print(table)
    if report.profile:
        console.print(f"profile: bench/results/{report.profile}")
