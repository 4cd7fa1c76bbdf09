"""order_intake: durable orders per second through ``POST /v1/orders``, N concurrent clients.

The trader API runs as a real uvicorn process (``sapphire api``) on Postgres with fsync and
synchronous commit on, so a 201 means the order, its fill, the position and the cash are on
disk. It trades 20 instruments, and before anything is measured it gets a quote for each
and a book of resting orders (non-marketable GTC limits, buys 5-15% below the bid and sells
5-15% above the ask, within a widened price collar), so that every order is checked
against open orders the way a busy account's would be.

Every client is its own keep-alive connection (:mod:`bench.http`, a lean client, so the load
generator leaves the cores to the server) sending marketable IOC limit orders to the 20
symbols in turn, each symbol alternating buy and sell so positions stay small; one order at
a time per client, clients concurrent. A level's rate runs from the first request to the
last answer; an order's ack latency from writing its request to reading its whole answer.
More than 1% of answers other than 201 at a level fails the run: refusals measure nothing.

CPU per order is read from ``/proc/<pid>/stat`` (utime + stime) around each level, for the
API process, the Postgres server (the postmaster and all its children) and this process,
which is the load client.

Floors, measured in the same run on the same machine:

* Postgres, one psycopg connection: single-row ``INSERT`` in autocommit (one durable commit
  per row), and group commit: one multi-row ``INSERT`` of N rows then ``COMMIT``.
* Bare HTTP: ``bench/floor_app.py`` (a FastAPI POST route that decodes the same order body
  and answers a small JSON 201) served by ``sapphire api``'s own ``serve`` (same uvicorn
  settings), driven by the same client at the same concurrency levels.

A missed target starts pyinstrument in the API process, which was started with the
profiler armed but idle, for one more pass at 8 clients after the measured levels; then a
fresh API process on the same books is profiled at 1 client, where each batch holds one
order and the fixed cost of a batch shows (the 8 clients' batches share it).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import psycopg

from bench import environment, floor_app, http, procstat, report

NAME = "order_intake"
TICK = Decimal("0.01")
LOT = Decimal("0.01")
QUANTITY = "1.00"
CROSS = Decimal("0.001")
"""How far beyond the touch a measured IOC limit is (10 bps): marketable, inside the collar."""


@dataclass(frozen=True)
class Instrument:
    symbol: str
    ask: Decimal

    @property
    def bid(self) -> Decimal:
        return self.ask - TICK


INSTRUMENTS = tuple(Instrument(f"BN{k:02d}-USD", Decimal(50 + 25 * k)) for k in range(20))


@dataclass(frozen=True)
class Sizes:
    orders: int = 2_000
    """Measured orders per concurrency level (and bare HTTP requests per level)."""
    clients: tuple[int, ...] = (1, 8, 32)
    resting_orders: int = 1_000
    warmup_orders: int = 200
    floor_rows: int = 4_800
    """Rows per Postgres floor (each group size commits floor_rows / N times)."""
    rows_per_commit: tuple[int, ...] = (1, 8, 32)
    profile_orders: int = 500

    def __post_init__(self) -> None:
        if not {1, 8} <= set(self.clients):
            raise ValueError("the targets need the levels of 1 and 8 clients")


FULL = Sizes()
SMOKE = Sizes(
    orders=40, clients=(1, 8), resting_orders=40, warmup_orders=20, floor_rows=64, profile_orders=40
)

RISK = {
    "stale_quote_seconds": "3600",
    "max_drawdown": "1",
    "max_daily_loss": "100000000",
    "price_collar_bps": "2000",
    "max_order_notional": "10000000",
    "max_position_notional": "100000000",
    "max_gross_exposure": "1000000000",
}
API_SETTINGS = {
    "fee_bps": "1",
    "slippage_bps": "0",
    "instruments": json.dumps(
        [{"symbol": i.symbol, "tick_size": str(TICK), "lot_size": str(LOT)} for i in INSTRUMENTS]
    ),
    "risk": json.dumps(RISK),
}


def _limit(price: Decimal, factor: Decimal, rounding: str) -> str:
    return str((price * factor / TICK).to_integral_value(rounding=rounding) * TICK)


def _order(instrument: Instrument, side: str, price: str, time_in_force: str) -> dict[str, str]:
    return {
        "client_order_id": f"bench-{uuid.uuid4().hex}",
        "symbol": instrument.symbol,
        "side": side,
        "type": "limit",
        "quantity": QUANTITY,
        "limit_price": price,
        "time_in_force": time_in_force,
        "agent": "bench",
    }


def ioc_body(index: int) -> dict[str, str]:
    """Marketable IOC: symbols round-robin, each symbol alternating buy and sell."""
    instrument = INSTRUMENTS[index % len(INSTRUMENTS)]
    if (index // len(INSTRUMENTS)) % 2 == 0:
        return _order(instrument, "buy", _limit(instrument.ask, 1 + CROSS, ROUND_CEILING), "ioc")
    return _order(instrument, "sell", _limit(instrument.bid, 1 - CROSS, ROUND_FLOOR), "ioc")


def resting_body(index: int) -> dict[str, str]:
    """Non-marketable GTC: buys 5-15% below the bid, sells 5-15% above the ask."""
    instrument = INSTRUMENTS[index % len(INSTRUMENTS)]
    depth = Decimal(5 + (index // (2 * len(INSTRUMENTS))) % 11) / 100
    if (index // len(INSTRUMENTS)) % 2 == 0:
        return _order(instrument, "buy", _limit(instrument.bid, 1 - depth, ROUND_FLOOR), "gtc")
    return _order(instrument, "sell", _limit(instrument.ask, 1 + depth, ROUND_CEILING), "gtc")


def quotes() -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    ticks = [
        {"symbol": i.symbol, "bid": str(i.bid), "ask": str(i.ask), "last": str(i.ask), "size": "1", "ts": now}
        for i in INSTRUMENTS
    ]
    return {"ticks": ticks}


@dataclass
class Level:
    clients: int
    answers: http.Answers
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds spent during the level, by process (api, postgres, client)."""

    @property
    def accepted(self) -> int:
        return self.answers.count(201)

    @property
    def rate(self) -> float:
        return self.accepted / self.answers.elapsed

    def order_statuses(self) -> list[str]:
        """The ``status`` of each answer's order (read after the level, off the clock)."""
        return [_status(body) for body in self.answers.bodies]


def _status(body: bytes) -> str:
    try:
        decoded = json.loads(body)
    except ValueError:
        return "(not JSON)"
    return str(decoded.get("status")) if isinstance(decoded, dict) else "(not an object)"


def check(level: Level, what: str, *, tolerance: float = 0.01) -> None:
    """Raise when more than ``tolerance`` of the answers are not 201, with a sample answer."""
    answered = len(level.answers.statuses)
    refused = answered - level.accepted
    if refused > tolerance * answered:
        status, body = level.answers.first_other(201) or (0, b"")
        raise RuntimeError(
            f"{NAME}: {refused} of {answered} answers to {what} at {level.clients} clients were not 201; "
            f"e.g. {status} {body[:500].decode(errors='replace')}"
        )


async def measure(
    url: str,
    path: str,
    bodies: list[dict[str, str]],
    clients: int,
    meter: procstat.Meter | None = None,
    *,
    tolerance: float = 0.01,
) -> Level:
    host = http.host_of(url)
    token = environment.AGENT_TOKEN
    requests = [http.encode(host, token, "POST", path, body) for body in bodies]
    async with http.pool(url, token=token, clients=clients) as connections:
        before = meter.read() if meter else {}
        answers = await connections.run(requests)
        after = meter.read() if meter else {}
    level = Level(clients, answers, procstat.Meter.spent(before, after))
    check(level, f"POST {path}", tolerance=tolerance)
    return level


def _row() -> tuple[object, ...]:
    instrument = INSTRUMENTS[0]
    return (uuid.uuid4(), instrument.symbol, Decimal(QUANTITY), instrument.ask, datetime.now(UTC))


def _rows_per_s(connection: psycopg.Connection[Any], size: int | None, rows: int) -> float:
    """``size=None``: one autocommit INSERT per row; else ``size``-row INSERTs, each its own transaction."""
    statement = "INSERT INTO bench_floor VALUES " + ", ".join(["(%s, %s, %s, %s, %s)"] * (size or 1))

    def once() -> None:
        if size is None:
            connection.execute(statement, _row())
            return
        with connection.transaction():
            connection.execute(statement, [value for _ in range(size) for value in _row()])

    for _ in range(20):  # warm the connection and the prepared plan
        once()
    commits = max(1, rows // (size or 1))
    started = time.perf_counter()
    for _ in range(commits):
        once()
    return commits * (size or 1) / (time.perf_counter() - started)


def insert_floors(database_url: str, rows: int, group_sizes: tuple[int, ...]) -> dict[int, float]:
    """Rows per second: key 0 is single-row autocommit inserts, key N is N rows per commit."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE bench_floor (id uuid PRIMARY KEY, symbol text NOT NULL, "
            "quantity numeric NOT NULL, price numeric NOT NULL, created_at timestamptz NOT NULL)"
        )
        rates = {0: _rows_per_s(connection, None, rows)}
        rates.update({size: _rows_per_s(connection, size, rows) for size in group_sizes})
        connection.execute("DROP TABLE bench_floor")
    return rates


async def http_floor(url: str, sizes: Sizes) -> dict[int, Level]:
    bodies = [ioc_body(i) for i in range(sizes.orders)]
    # Warm-up; 404s here mean the real API answered: serve() no longer builds its app with create_app.
    await measure(url, floor_app.PATH, bodies[: sizes.warmup_orders], 1, tolerance=0)
    return {n: await measure(url, floor_app.PATH, bodies, n) for n in sizes.clients}


async def prepare(url: str, sizes: Sizes) -> None:
    """Quotes for every symbol, then the resting book; every one of them must be accepted."""
    feed = await http.Connection.open(url, token=environment.AGENT_TOKEN)
    try:
        status, body = await feed.request("POST", "/v1/ticks", quotes())
    finally:
        await feed.close()
    if status != 200:
        raise RuntimeError(f"{NAME}: the opening quotes were refused: {status} {body[:500]!r}")
    book = await measure(
        url, "/v1/orders", [resting_body(i) for i in range(sizes.resting_orders)], 8, tolerance=0
    )
    statuses = collections.Counter(book.order_statuses())
    if set(statuses) != {"new"}:
        raise RuntimeError(f"{NAME}: the resting orders must all rest (status new), got {dict(statuses)}")


async def intake(url: str, sizes: Sizes, meter: procstat.Meter) -> dict[int, Level]:
    offset = sizes.warmup_orders
    await measure(url, "/v1/orders", [ioc_body(i) for i in range(offset)], 1)
    levels = {}
    for n in sizes.clients:
        bodies = [ioc_body(offset + i) for i in range(sizes.orders)]
        offset += sizes.orders
        levels[n] = await measure(url, "/v1/orders", bodies, n, meter)
    return levels


def build(
    sizes: Sizes, services: environment.Services, pg: dict[int, float], bare: dict[int, Level]
) -> report.Report:
    result = report.Report(
        name=NAME,
        method=__doc__ or "",
        sizes=asdict(sizes),
        versions=services.versions(),
        settings={
            "trader_api": API_SETTINGS,
            "server": "sapphire.trader_api.server.serve (uvicorn, 1 process), floor app alike",
        },
    )
    result.floor["single_row_inserts_per_s"] = report.Figure(pg[0], "rows/s", "autocommit, one connection")
    for size in sizes.rows_per_commit:
        result.floor[f"group_commit_rows_per_s_{size}_per_commit"] = report.Figure(
            pg[size], "rows/s", f"BEGIN, one {size}-row INSERT, COMMIT; one connection"
        )
    for n, level in bare.items():
        result.floor[f"http_posts_per_s_{n}_clients"] = report.Figure(level.rate, "requests/s")
        ack = report.latency_figures(level.answers.latencies_ns)
        for q in ("p50", "p99"):
            result.floor[f"http_{q}_{n}_clients"] = ack[q]
    return result


def add_levels(result: report.Report, levels: dict[int, Level], bare: dict[int, Level]) -> None:
    for n, level in levels.items():
        answered = len(level.answers.statuses)
        result.figures[f"orders_per_s_{n}_clients"] = report.Figure(
            level.rate, "orders/s", f"{level.accepted} of {answered} answered 201"
        )
        ack = report.latency_figures(level.answers.latencies_ns)
        for q in ("p50", "p99", "p99.9"):
            result.figures[f"ack_{q}_{n}_clients"] = ack[q]
        result.figures[f"non_201_{n}_clients"] = report.Figure(answered - level.accepted, "answers")
        unfilled = sum(1 for s in level.order_statuses() if s != "filled")
        result.figures[f"not_filled_{n}_clients"] = report.Figure(
            unfilled, "orders", "201 but status not filled"
        )
        for process in ("api", "postgres", "client"):
            if process in level.cpu:
                seconds = level.cpu[process]
                result.figures[f"cpu_{process}_ms_per_order_{n}_clients"] = report.Figure(
                    1000 * seconds / max(1, level.accepted),
                    "ms/order",
                    f"{seconds:.2f} s CPU, {seconds / level.answers.elapsed:.2f} cores",
                )
        result.ratios[f"orders_over_http_floor_{n}_clients"] = report.Figure(level.rate / bare[n].rate, "x")
    best_n, best = max(levels.items(), key=lambda item: item[1].rate)
    result.figures["orders_per_s"] = report.Figure(best.rate, "orders/s", f"best level: {best_n} clients")
    result.ratios["orders_over_single_row_floor"] = report.Figure(
        levels[8].rate / result.floor["single_row_inserts_per_s"].value, "x", "8 clients"
    )
    result.targets = [
        report.Target("orders_per_s_8_clients", ">=", 3000),
        report.Target("ack_p99_8_clients", "<=", 10),
        report.Target("ack_p50_1_clients", "<=", 1),
        report.Target("orders_over_http_floor_8_clients", ">=", 0.4),
    ]


async def run(
    services: environment.Services,
    sizes: Sizes = FULL,
    *,
    results: Path = report.RESULTS,
    profile: bool = True,
) -> report.Report:
    scratch = Path(tempfile.mkdtemp(prefix="sapphire-bench-")) / "api.profile" if profile else None
    floor_database = services.postgres.create_database()
    try:
        pg = await asyncio.to_thread(insert_floors, floor_database, sizes.floor_rows, sizes.rows_per_commit)
    finally:
        services.postgres.drop_database(floor_database)
    database = services.migrated_database()
    redis_url, prefix = services.fresh_redis()
    try:
        with environment.running_api(
            database_url=database,
            redis_url=redis_url,
            prefix=prefix,
            settings=API_SETTINGS,
            module=floor_app.__name__,
        ) as floor:
            bare = await http_floor(floor.url, sizes)
        result = build(sizes, services, pg, bare)
        api_process = functools.partial(
            environment.running_api,
            database_url=database,
            redis_url=redis_url,
            prefix=prefix,
            settings=API_SETTINGS,
            profile=scratch,
        )
        with api_process() as api:
            meter = procstat.Meter(api=api.process.pid, postgres=procstat.postmaster_pid(database))
            await prepare(api.url, sizes)
            add_levels(result, await intake(api.url, sizes, meter), bare)
            profiling = scratch is not None and result.missed
            # An armed profiler writes its file on shutdown only if started: start it either way.
            api.start_profile()
            if profiling:
                await measure(api.url, "/v1/orders", [ioc_body(i) for i in range(sizes.profile_orders)], 8)
        if scratch is not None and profiling:
            # A second pass at 1 client, in a fresh process on the same books: there each batch
            # holds one order, so the fixed cost of a batch shows, which the 8 clients' share.
            parts = [f"# {NAME}: pyinstrument of the API process, {sizes.profile_orders} orders, 8 clients\n"]
            parts.append(report.read_or_note(scratch))
            with api_process() as api:
                await measure(api.url, "/v1/orders", [ioc_body(i) for i in range(sizes.warmup_orders)], 1)
                api.start_profile()
                await measure(api.url, "/v1/orders", [ioc_body(i) for i in range(sizes.profile_orders)], 1)
            parts.append(f"\n# {NAME}: the same, 1 client\n")
            parts.append(report.read_or_note(scratch))
            result.profile = report.save_profile(results, NAME, parts)
    finally:
        services.postgres.drop_database(database)
    if scratch is not None:
        shutil.rmtree(scratch.parent, ignore_errors=True)
    return result
