"""``python -m bench [name ...] [--smoke] [--no-profile]``: run benchmarks, print tables, write JSON.

Without names every benchmark runs, in the order below. Postgres (durable) and Redis are
started once and shared; each benchmark gets its own database and Redis prefix. The control
plane is started by ``operator_scale`` alone, since only it needs one.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import backtest, environment, ingest, operator_scale, order_intake, report, tick_to_order

Runner = Callable[..., Awaitable[report.Report]]
BENCHMARKS: dict[str, tuple[Runner, Any, Any]] = {
    tick_to_order.NAME: (tick_to_order.run, tick_to_order.FULL, tick_to_order.SMOKE),
    order_intake.NAME: (order_intake.run, order_intake.FULL, order_intake.SMOKE),
    ingest.NAME: (ingest.run, ingest.FULL, ingest.SMOKE),
    operator_scale.NAME: (operator_scale.run, operator_scale.FULL, operator_scale.SMOKE),
    backtest.NAME: (backtest.run, backtest.FULL, backtest.SMOKE),
}


async def main(names: list[str], *, smoke: bool, profile: bool) -> int:
    console = Console(width=120)
    # Smoke runs measure nothing worth keeping: they must not overwrite bench/results.
    results = Path(tempfile.mkdtemp(prefix="sapphire-bench-")) if smoke else report.RESULTS
    missed = []
    with environment.started_services(durable=True) as services:
        for name in names:
            runner, full, small = BENCHMARKS[name]
            console.rule(name)
            result = await runner(services, small if smoke else full, results=results, profile=profile)
            report.show(result, console)
            path = report.write(result, results)
            console.print(f"wrote {path}")
            if result.missed:
                missed.append(name)
    if missed:
        console.print(f"[yellow]targets missed by: {', '.join(missed)} (see the JSON and profiles)")
    return 0


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code, measures nothing")
    parser.add_argument(
        "--no-profile", action="store_true", help="skip the profiling pass on a missed target"
    )
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    return asyncio.run(main(names, smoke=args.smoke, profile=not args.no_profile))


if __name__ == "__main__":
    sys.exit(cli())
