"""The equity history: a point per second in which the books moved, journaled with the batch,
served by ``GET /v1/portfolio/history``, kept across restarts and thinned with age."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from sapphire.trader_api.storage import journal
from tests.support import processes
from tests.trader_api.support import (
    AGENT,
    READ,
    ManualClock,
    dec,
    make_settings,
    order,
    running_client,
    send_ticks,
    tick,
)

FIGURES = ("equity", "cash", "realized_pnl", "unrealized_pnl", "fees")


async def history(client: httpx.AsyncClient, **query: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/portfolio/history", params=query, headers=READ)
    assert response.status_code == 200, response.text
    points: list[dict[str, Any]] = response.json()
    return points


async def test_a_point_holds_the_books_as_the_last_batch_of_its_second_left_them(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await send_ticks(client, tick("BTC-USD", "100.00", "100.10", ts=clock.now))
    assert await history(client, interval="1s") == []  # quotes alone, no position: the books did not move

    placed = await client.post("/v1/orders", json=order("h1", quantity="2"), headers=AGENT)
    assert placed.status_code == 201, placed.text
    clock.advance(0.5)  # the same second: its point is replaced, not added
    await send_ticks(client, tick("BTC-USD", "101.00", "101.10", ts=clock.now))
    [point] = await history(client, interval="1s")
    assert point["ts"] == "2026-03-02T14:30:00Z"
    portfolio = (await client.get("/v1/portfolio", headers=READ)).json()
    assert {name: dec(point[name]) for name in FIGURES} == {name: dec(portfolio[name]) for name in FIGURES}
    assert dec(point["unrealized_pnl"]) == Decimal("2") * (Decimal("101.05") - Decimal("100.10"))

    clock.advance(1)
    await send_ticks(client, tick("BTC-USD", "99.00", "99.10", ts=clock.now))
    first, second = await history(client, interval="1s")
    assert first == point
    assert second["ts"] == "2026-03-02T14:30:01Z"
    assert dec(second["equity"]) < dec(first["equity"])


async def test_the_history_is_the_last_point_of_each_interval_since_a_time(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await send_ticks(client, tick("BTC-USD", "100.00", "100.10", ts=clock.now))
    assert (await client.post("/v1/orders", json=order("h2"), headers=AGENT)).status_code == 201
    start = clock.now
    for step in range(6):  # 20 s apart: points at :00, :20, :40 of two minutes
        clock.advance(20)
        await send_ticks(client, tick("BTC-USD", f"{101 + step}.00", f"{101 + step}.10", ts=clock.now))
    every = await history(client, interval="1s")
    assert len(every) == 7
    minutes = await history(client, interval="1m")
    assert [p["ts"] for p in minutes] == [every[2]["ts"], every[5]["ts"], every[6]["ts"]]
    assert minutes[-1] == every[-1]
    later = await history(client, interval="1s", since=(start + timedelta(seconds=61)).isoformat())
    assert later == every[4:]
    assert (await history(client, interval="1h")) == [every[-1]]


@pytest.mark.parametrize(
    ("query", "field"),
    [({"interval": "5m"}, "interval"), ({"since": "yesterday"}, "since")],
)
async def test_a_bad_query_is_refused_naming_the_field(
    client: httpx.AsyncClient, query: dict[str, str], field: str
) -> None:
    response = await client.get("/v1/portfolio/history", params=query, headers=READ)
    assert response.status_code == 422
    assert field in response.text
    assert (await client.get("/v1/portfolio/history")).status_code == 401


async def test_the_history_survives_a_restart(
    trader_database_url: str, redis_url: str, redis_prefix: str, clock: ManualClock
) -> None:
    settings = make_settings(trader_database_url, redis_url, redis_prefix)
    async with running_client(settings, clock) as client:
        await send_ticks(client, tick("BTC-USD", "100.00", "100.10", ts=clock.now))
        assert (await client.post("/v1/orders", json=order("h3"), headers=AGENT)).status_code == 201
        clock.advance(1)
        await send_ticks(client, tick("BTC-USD", "100.50", "100.60", ts=clock.now))
        before = await history(client, interval="1s")
    assert len(before) == 2
    async with running_client(settings, clock) as client:
        assert await history(client, interval="1s") == before


# Thinning -------------------------------------------------------------------------------

NOW = datetime(2026, 3, 2, 14, 30, 0, tzinfo=UTC)


def last_of_each(stamps: list[datetime], seconds: int) -> set[datetime]:
    """What thinning must keep of ``stamps``, said the plain way: sort, then keep each stamp
    whose successor falls in another bucket."""
    ordered = sorted(set(stamps))
    bucket = [int(ts.timestamp()) // seconds for ts in ordered]
    return {ts for i, ts in enumerate(ordered) if i + 1 == len(ordered) or bucket[i + 1] != bucket[i]}


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=200), st.sampled_from([1, 60, 3600]))
def test_last_per_bucket_keeps_exactly_the_latest_stamp_of_each_bucket(
    offsets: list[int], seconds: int
) -> None:
    stamps = [NOW - timedelta(seconds=offset) for offset in offsets]
    assert journal.last_per_bucket(stamps, timedelta(seconds=seconds)) == last_of_each(stamps, seconds)


@pytest.fixture
async def database(trader_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(trader_database_url)
    yield engine
    await engine.dispose()


async def insert_points(engine: AsyncEngine, stamps: list[datetime]) -> None:
    rows = [{"ts": ts, **{name: Decimal(index) for name in FIGURES}} for index, ts in enumerate(stamps)]
    async with engine.begin() as connection:
        await connection.execute(sa.insert(journal.EQUITY_POINTS), rows)


async def stored(engine: AsyncEngine) -> set[datetime]:
    async with engine.connect() as connection:
        return set((await connection.execute(sa.select(journal.EQUITY_POINTS.c.ts))).scalars())


async def test_thinning_keeps_seconds_for_a_day_minutes_for_30_days_and_hours_beyond(
    database: AsyncEngine,
) -> None:
    recent = [NOW - timedelta(hours=23, seconds=s) for s in range(0, 150, 7)]  # under a day: all kept
    day_old = [NOW - timedelta(days=2, seconds=s) for s in range(0, 300, 11)]  # one a minute kept
    month_old = [NOW - timedelta(days=40, minutes=m) for m in range(0, 200, 13)]  # one an hour kept
    await insert_points(database, recent + day_old + month_old)

    async with database.begin() as connection:
        deleted = await journal.thin_equity_history(connection, now=NOW, window=None)

    expected = set(recent) | last_of_each(day_old, 60) | last_of_each(month_old, 3600)
    assert await stored(database) == expected
    assert deleted == len(recent + day_old + month_old) - len(expected) > 0
    async with database.begin() as connection:  # a second pass finds nothing more to do
        assert await journal.thin_equity_history(connection, now=NOW, window=None) == 0


async def test_a_bounded_pass_looks_only_just_past_each_age(database: AsyncEngine) -> None:
    just_past = [NOW - timedelta(days=1, minutes=5, seconds=10 + s) for s in range(3)]
    long_past = [NOW - timedelta(days=3, seconds=s) for s in range(3)]
    await insert_points(database, just_past + long_past)
    async with database.begin() as connection:
        await journal.thin_equity_history(connection, now=NOW)
    assert await stored(database) == {max(just_past)} | set(long_past)  # what a writer's first pass is for


async def test_the_writer_thins_what_aged_while_no_writer_ran(
    database: AsyncEngine, trader_database_url: str, redis_url: str, redis_prefix: str, clock: ManualClock
) -> None:
    old = [clock.now - timedelta(days=5, seconds=s) for s in range(0, 120)]  # two minutes of seconds
    await insert_points(database, old)
    assert len(await stored(database)) == 120
    settings = make_settings(trader_database_url, redis_url, redis_prefix)
    async with running_client(settings, clock):
        kept = await processes.observe(
            lambda: _thinned(database), within=30, what="the writer's first thinning pass"
        )
    assert kept == last_of_each(old, 60)


async def _thinned(database: AsyncEngine) -> set[datetime] | None:
    points = await stored(database)
    return points if len(points) < 120 else None
