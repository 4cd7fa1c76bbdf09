"""ingest: ticks per second through the batch endpoint ``POST /v1/ticks``, with the six
analysts and the executor subscribed.

The trader API runs as a real uvicorn process on durable Postgres. Each request carries a
batch of ticks over three instruments; the order engine takes them into memory (latest
quotes, resting-order fills, marks, bars aggregated per batch), the batch's changes commit
in one group commit (the bars that changed as upserts), and only then is the batch
published: the latest quotes and one tick message per symbol per batch. The six analysts
and the executor run as their own ``sapphire agent run`` processes subscribed to the three
symbols' tick channels (they conflate: a message per symbol per batch), so the figure is
ingest while the system listens. The request bodies are encoded before the clock starts and
sent by :mod:`bench.http` over a few concurrent keep-alive connections. The clock runs from
the first request to the last answer. CPU is read from ``/proc`` for every process (API,
Postgres, Redis, this load client and each agent), as cores used over the measured run.

The floor is the Redis work of the old design without the API: an ``MSET`` of the latest
quotes and one ``PUBLISH`` per tick, with the same payloads, pipelined in transactions of the
same batch size from redis-py's asyncio client.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio

from bench import environment, fleet, http, procstat, report

NAME = "ingest"
SYMBOLS = (("BTC-USD", 60_000.0), ("ETH-USD", 3_000.0), ("AAPL", 200.0))


@dataclass(frozen=True)
class Sizes:
    ticks: int = 400_000
    batch: int = 5_000
    """The most POST /v1/ticks takes: a durable commit costs milliseconds whatever it holds."""
    clients: int = 8
    floor_ticks: int = 300_000
    profile_ticks: int = 20_000


FULL = Sizes()
SMOKE = Sizes(ticks=400, batch=100, clients=2, floor_ticks=400, profile_ticks=200)


def make_batches(ticks: int, batch: int) -> list[list[dict[str, Any]]]:
    start = datetime.now(UTC)
    rows = []
    for index in range(ticks):
        symbol, price = SYMBOLS[index % len(SYMBOLS)]
        bid = price + (index % 50) * 0.01
        rows.append(
            {
                "symbol": symbol,
                "bid": f"{bid:.2f}",
                "ask": f"{bid + 0.01:.2f}",
                "last": f"{bid + 0.01:.2f}",
                "size": "0.5",
                "ts": (start + timedelta(microseconds=index)).isoformat(),
            }
        )
    return [rows[i : i + batch] for i in range(0, len(rows), batch)]


async def through_api(
    url: str, sizes: Sizes, ticks: int, on_start: Callable[[], None] | None = None
) -> tuple[float, int, float]:
    """(ticks/s, failed requests, seconds on the clock). The bodies are encoded before the
    clock starts; ``on_start`` is called as it starts (the CPU meters are read then)."""
    connections = [
        await http.Connection.open(url, token=environment.AGENT_TOKEN) for _ in range(sizes.clients)
    ]
    queue = [
        (connections[0].encode("POST", "/v1/ticks", {"ticks": b}), len(b))
        for b in make_batches(ticks, sizes.batch)
    ]
    accepted, failed = 0, 0

    async def client(connection: http.Connection) -> None:
        nonlocal accepted, failed
        while queue:
            request, count = queue.pop()
            status, _ = await connection.send(request)
            if status == 200:
                accepted += count
            else:
                failed += 1

    if on_start is not None:
        on_start()
    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(c) for c in connections))
    finally:
        elapsed = time.perf_counter() - started
        for connection in connections:
            await connection.close()
    return accepted / elapsed, failed, elapsed


async def redis_floor(redis_url: str, prefix: str, sizes: Sizes) -> float:
    client = redis.asyncio.Redis.from_url(redis_url)
    batches = [
        [(f"{prefix}ticks:{t['symbol']}", json.dumps(t)) for t in b]
        for b in make_batches(sizes.floor_ticks, sizes.batch)
    ]
    try:
        started = time.perf_counter()
        for messages in batches:
            latest = {channel.replace(":ticks:", ":quote:"): data for channel, data in messages}
            async with client.pipeline(transaction=True) as pipe:
                pipe.mset(latest)
                for channel, data in messages:
                    pipe.publish(channel, data)
                await pipe.execute()
        elapsed = time.perf_counter() - started
    finally:
        await client.aclose()
    return sizes.floor_ticks / elapsed


async def _with_api(
    services: environment.Services, sizes: Sizes, ticks: int, profile: Path | None
) -> tuple[float, int, dict[str, float]]:
    """(ticks/s, failed requests, cores used per process)."""
    database = services.migrated_database()
    redis_url, prefix = services.fresh_redis()
    try:
        with environment.running_api(
            database_url=database, redis_url=redis_url, prefix=prefix, profile=profile
        ) as api:
            symbols = [symbol for symbol, _ in SYMBOLS]
            members = fleet.analysts_and_executor(symbols, interval_seconds=1.0)
            with fleet.running(api.url, redis_url, prefix, members) as agents:
                channels = {f"{prefix}ticks:{symbol}": len(members) for symbol in symbols}
                await asyncio.to_thread(fleet.wait_subscribed, redis_url, channels, agents)
                await through_api(api.url, sizes, min(ticks, 10 * sizes.batch))  # warm-up
                meter = procstat.Meter(
                    api=api.process.pid,
                    postgres=procstat.postmaster_pid(database),
                    redis=services.redis.process.pid if services.redis.process else None,
                )
                before: dict[str, float] = {}
                agents_before: dict[str, float] = {}

                def start() -> None:  # the meters start with the clock, after the bodies are encoded
                    before.update(meter.read())
                    agents_before.update(agents.cpu())
                    api.start_profile()

                rate, failed, elapsed = await through_api(api.url, sizes, ticks, start)
                spent = meter.spent(before, meter.read())
                spent |= {f"agent_{k}": v - agents_before[k] for k, v in agents.cpu().items()}
                return rate, failed, {name: seconds / elapsed for name, seconds in spent.items()}
    finally:
        services.postgres.drop_database(database)


async def run(
    services: environment.Services,
    sizes: Sizes = FULL,
    *,
    results: Path = report.RESULTS,
    profile: bool = True,
) -> report.Report:
    redis_url, prefix = services.fresh_redis()
    floor = await redis_floor(redis_url, prefix, sizes)
    rate, failed, cores = await _with_api(services, sizes, sizes.ticks, None)
    result = report.Report(
        name=NAME, method=__doc__ or "", sizes=asdict(sizes), versions=services.versions(),
        settings={"uvicorn_workers": 1, "subscribers": [*fleet.ANALYSTS, "executor"]},
    )  # fmt: skip
    result.figures["ticks_per_s"] = report.Figure(rate, "ticks/s")
    result.figures["failed_requests"] = report.Figure(failed, "requests")
    result.figures["cpu_api_per_tick"] = report.Figure(
        cores["api"] / rate * 1e6 if rate else 0.0, "us", "the API's CPU per tick accepted"
    )
    for name, used in cores.items():
        result.figures[f"cpu_{name}_cores"] = report.Figure(used, "cores", "CPU s / s of the measured run")
    result.floor["redis_pipelined_ticks_per_s"] = report.Figure(floor, "ticks/s", "MSET + PUBLISH per tick")
    result.ratios["api_over_floor"] = report.Figure(rate / floor, "x")
    result.targets = [report.Target("ticks_per_s", ">=", 200_000)]
    if profile and result.missed:
        scratch = Path(tempfile.mkdtemp(prefix="sapphire-bench-")) / "api.profile"
        await _with_api(services, sizes, sizes.profile_ticks, scratch)
        header = f"# {NAME}: pyinstrument of the trader API process, {sizes.profile_ticks} ticks\n"
        result.profile = report.save_profile(results, NAME, [header, report.read_or_note(scratch)])
    return result
