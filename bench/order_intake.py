"""order_intake: durable orders per second through ``POST /v1/orders``, N concurrent clients.

The trader API runs as a real uvicorn process (``sapphire api``) on Postgres with fsync and
synchronous commit on, so a 201 means the order, its fill, the position and the cash are on
disk. Every client is its own keep-alive connection (:mod:`bench.http`, a lean client, so
the load generator leaves the cores to the server) sending marketable IOC limit orders,
alternating buy and sell so the position stays within its limits, one at a time; clients
run concurrently. The clock runs from the first request to the last answer of each level.

The floor is the rate of single-row ``INSERT`` + ``COMMIT`` into the same Postgres from one
psycopg connection: one durable commit at a time, no HTTP, no Python business logic.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench import environment, http, report

NAME = "order_intake"
SYMBOL = "BTC-USD"


@dataclass(frozen=True)
class Sizes:
    orders: int = 2_000
    """Per concurrency level."""
    clients: tuple[int, ...] = (1, 8, 32)
    floor_rows: int = 5_000
    profile_orders: int = 500


FULL = Sizes()
SMOKE = Sizes(orders=40, clients=(1, 4), floor_rows=40, profile_orders=40)

API_SETTINGS = {
    "fee_bps": "1",
    "slippage_bps": "0",
    "risk": json.dumps({"stale_quote_seconds": "3600", "max_drawdown": "1", "max_daily_loss": "100000000"}),
}


def order_body(index: int) -> dict[str, str]:
    side = "buy" if index % 2 == 0 else "sell"
    return {
        "client_order_id": f"bench-{uuid.uuid4().hex}",
        "symbol": SYMBOL,
        "side": side,
        "type": "limit",
        "quantity": "0.01",
        "limit_price": "60100.00" if side == "buy" else "59900.00",
        "time_in_force": "ioc",
        "agent": "bench",
    }


async def intake(url: str, *, orders: int, clients: int) -> tuple[float, int, int]:
    """(orders/s, accepted, other answers) for ``orders`` orders over ``clients`` connections."""
    counter = itertools.count()
    statuses: list[int] = []
    connections = [await http.Connection.open(url, token=environment.AGENT_TOKEN) for _ in range(clients)]

    async def client(connection: http.Connection) -> None:
        while (index := next(counter)) < orders:
            status, _ = await connection.request("POST", "/v1/orders", order_body(index))
            statuses.append(status)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(c) for c in connections))
    finally:
        elapsed = time.perf_counter() - started
        for connection in connections:
            await connection.close()
    accepted = sum(1 for s in statuses if s == 201)
    return accepted / elapsed, accepted, len(statuses) - accepted


def insert_floor(database_url: str, rows: int) -> float:
    """Single-row inserts per second, each its own durable transaction."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE bench_floor (id uuid PRIMARY KEY, symbol text NOT NULL, "
            "quantity numeric NOT NULL, price numeric NOT NULL, created_at timestamptz NOT NULL)"
        )
        statement = "INSERT INTO bench_floor VALUES (%s, %s, %s, %s, %s)"
        for _ in range(100):  # warm the connection and the prepared plan
            connection.execute(statement, (uuid.uuid4(), SYMBOL, "0.01", "60000.00", datetime.now(UTC)))
        started = time.perf_counter()
        for _ in range(rows):
            connection.execute(statement, (uuid.uuid4(), SYMBOL, "0.01", "60000.00", datetime.now(UTC)))
        elapsed = time.perf_counter() - started
        connection.execute("DROP TABLE bench_floor")
    return rows / elapsed


async def _with_api(
    services: environment.Services, sizes: Sizes, clients: tuple[int, ...], orders: int, profile: Path | None
) -> dict[int, tuple[float, int, int]]:
    database = services.migrated_database()
    redis_url, prefix = services.fresh_redis()
    try:
        with environment.running_api(
            database_url=database, redis_url=redis_url, prefix=prefix, settings=API_SETTINGS, profile=profile
        ) as api:
            feed = await http.Connection.open(api.url, token=environment.AGENT_TOKEN)
            tick = {
                "symbol": SYMBOL,
                "bid": "59999.99",
                "ask": "60000.00",
                "last": "60000.00",
                "size": "1",
                "ts": datetime.now(UTC).isoformat(),
            }
            status, body = await feed.request("POST", "/v1/ticks", {"ticks": [tick]})
            await feed.close()
            if status != 200:
                raise RuntimeError(f"{NAME}: the opening quote was refused: {status} {body[:300]!r}")
            await intake(api.url, orders=min(200, orders), clients=1)  # warm-up
            api.start_profile()
            return {n: await intake(api.url, orders=orders, clients=n) for n in clients}
    finally:
        services.postgres.drop_database(database)


async def run(
    services: environment.Services,
    sizes: Sizes = FULL,
    *,
    results: Path = report.RESULTS,
    profile: bool = True,
) -> report.Report:
    floor_database = services.postgres.create_database()
    try:
        floor = await asyncio.to_thread(insert_floor, floor_database, sizes.floor_rows)
    finally:
        services.postgres.drop_database(floor_database)
    levels = await _with_api(services, sizes, sizes.clients, sizes.orders, None)
    result = report.Report(
        name=NAME,
        method=__doc__ or "",
        sizes=asdict(sizes),
        versions=services.versions(),
        settings={"trader_api": API_SETTINGS, "uvicorn_workers": 1, "sqlalchemy_pool": "10 + 10 overflow"},
    )
    for clients, (rate, accepted, other) in levels.items():
        result.figures[f"orders_per_s_{clients}_clients"] = report.Figure(rate, "orders/s")
        result.figures[f"non_201_{clients}_clients"] = report.Figure(other, "answers", f"{accepted} accepted")
    best_clients, (best, _, _) = max(levels.items(), key=lambda item: item[1][0])
    result.figures["orders_per_s"] = report.Figure(best, "orders/s", f"best level: {best_clients} clients")
    result.floor["single_row_inserts_per_s"] = report.Figure(
        floor, "rows/s", "one connection, durable commits"
    )
    result.ratios["orders_over_floor"] = report.Figure(best / floor, "x")
    result.targets = [
        report.Target("orders_per_s", ">=", 3000),
        report.Target("orders_over_floor", ">=", 0.3),
    ]
    if profile and result.missed:
        scratch = Path(tempfile.mkdtemp(prefix="sapphire-bench-")) / "api.profile"
        await _with_api(services, sizes, (best_clients,), sizes.profile_orders, scratch)
        header = f"# {NAME}: pyinstrument of the trader API process, {sizes.profile_orders} orders, "
        result.profile = report.save_profile(
            results, NAME, [f"{header}{best_clients} clients\n", report.read_or_note(scratch)]
        )
    return result
