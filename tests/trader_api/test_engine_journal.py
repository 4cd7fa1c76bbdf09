"""Round trip through the database: random command sequences go through the real engine
and the real batch writer (Postgres: psycopg pipelines; SQLite: SQLAlchemy Core), in
random batches; a fresh engine loaded from the tables then holds exactly the same state
(account, open orders in time priority, idempotency index, sequence numbers), and the
tables hold exactly the fills the engine made."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sapphire.migrations import config as migrations
from sapphire.trader_api import errors
from sapphire.trader_api.core import domain, engine, records, risk, venue
from sapphire.trader_api.settings import RiskLimitsConfig
from sapphire.trader_api.storage import batches, books, journal
from sapphire.trader_api.storage.database import Database
from tests.support import services

START = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
TICK = Decimal("0.01")
LOT = Decimal("0.001")
SYMBOLS = ("BTC-USD", "ETH-USD")
CONFIG = venue.VenueConfig(fee_bps=Decimal("5"), slippage_bps=Decimal("2"))
LIMITS = risk.RiskLimits(**RiskLimitsConfig(stale_quote_seconds=Decimal(10**6)).model_dump())


@dataclasses.dataclass(frozen=True)
class Instrument:
    tick_size: Decimal = TICK
    lot_size: Decimal = LOT


@dataclasses.dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


prices = st.integers(min_value=5_000, max_value=20_000).map(lambda cents: Decimal(cents) * TICK)
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("tick"), st.sampled_from(SYMBOLS), prices, st.integers(1, 20), st.integers(0, 3000)
        ),
        st.tuples(
            st.just("order"),
            st.sampled_from(SYMBOLS),
            st.sampled_from(list(domain.Side)),
            st.integers(1, 3000),
            st.one_of(st.none(), st.integers(-200, 200)),
            st.sampled_from(list(domain.TimeInForce)),
        ),
        st.tuples(st.just("repeat"), st.integers(0, 50)),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
        st.tuples(st.just("state"), st.sampled_from(list(domain.RiskState))),
        st.tuples(st.just("limits"), st.integers(100, 100_000)),
        st.tuples(st.just("clock"), st.integers(1, 30)),
        st.just(("commit",)),
    ),
    min_size=1,
    max_size=40,
)


def command_for(trader: engine.Engine, step: tuple[Any, ...], serial: int) -> records.Command | None:
    kind = step[0]
    if kind == "tick":
        _, symbol, mid, half_spread, lots = step
        return records.ApplyTicks(
            (
                domain.Quote(
                    symbol=symbol,
                    bid=max(mid - TICK * half_spread, TICK),
                    ask=mid + TICK * half_spread,
                    last=mid,
                    size=LOT * lots,
                    ts=trader.clock(),
                ),
            )
        )
    if kind == "order":
        _, symbol, side, lots, offset, tif = step
        quote = trader.quotes.get(symbol)
        limit = (
            None if offset is None or quote is None else max(quote.mid.quantize(TICK) + offset * TICK, TICK)
        )
        return records.SubmitOrder(
            client_order_id=f"c{serial}",
            request_hash=f"h{serial}",
            symbol=symbol,
            side=side,
            type=domain.OrderType.MARKET if limit is None else domain.OrderType.LIMIT,
            quantity=LOT * lots,
            limit_price=limit,
            time_in_force=tif,
            agent="prop",
        )
    if kind == "repeat":
        known = sorted(trader.idempotency.items())
        if not known:
            return None
        client_order_id, (fingerprint, _) = known[step[1] % len(known)]
        order = trader.order(trader.idempotency[client_order_id][1])
        if order is None:
            return None
        return records.SubmitOrder(
            client_order_id=client_order_id,
            request_hash=fingerprint,
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            quantity=order.quantity,
            limit_price=order.limit_price,
            time_in_force=order.time_in_force,
            agent=order.agent,
        )
    if kind == "cancel":
        open_orders = trader.open_orders
        return records.CancelOrder(open_orders[step[1] % len(open_orders)].id) if open_orders else None
    if kind == "state":
        return records.SetRiskState(step[1], "property test")
    if kind == "limits":
        return records.SetLimits({"max_order_notional": Decimal(step[1])})
    return None


def snapshot(trader: engine.Engine) -> tuple[Any, ...]:
    return (trader.account, tuple(trader.open_orders), trader.idempotency, trader.sequence, trader.intakes)


def new_engine(state: records.EngineState, clock: Clock) -> engine.Engine:
    return engine.Engine(
        state,
        venue=engine.PaperVenue(CONFIG),
        instruments=lambda symbol: Instrument() if symbol in SYMBOLS else None,
        clock=clock,
    )


@dataclasses.dataclass
class Store:
    """One database the examples reuse, emptied before each."""

    database: Database
    postgres: bool

    async def reset(self) -> None:
        async with self.database.write() as session:
            for table in ("fills", "orders", "positions", "bars", "equity_points", "accounts"):
                await session.execute(sa.text(f"DELETE FROM {table}"))
            await books.ensure_account(session, initial_cash=Decimal(100_000), limits=LIMITS, now=START)

    async def connect(self) -> batches.BatchConnection:
        if self.postgres:
            return await batches.PostgresBatches.connect(self.database.url)
        return await batches.CoreBatches.connect(self.database.engine, serialized=self.database.serialized())

    async def load(self) -> records.EngineState:
        async with self.database.engine.connect() as connection, connection.begin():
            return await journal.load(connection)

    async def fills(self) -> set[uuid.UUID]:
        async with self.database.engine.connect() as connection:
            return set((await connection.execute(sa.select(journal.FILLS.c.id))).scalars())

    async def equity_points(self) -> dict[datetime, records.EquityPoint]:
        async with self.database.engine.connect() as connection:
            rows = (await connection.execute(sa.select(journal.EQUITY_POINTS))).all()
        return {row.ts: records.EquityPoint(**row._asdict()) for row in rows}


async def round_trip(store: Store, script: list[tuple[Any, ...]]) -> None:
    await store.reset()
    writer = await store.connect()
    try:
        assert await writer.try_lock()
        async with store.database.engine.connect() as connection:
            epoch = await journal.claim(connection, address="http://writer", now=START)
        clock = Clock()
        trader = new_engine(await store.load(), clock)
        made: set[uuid.UUID] = set()
        points: dict[datetime, records.EquityPoint] = {}  # a later batch of a second replaces its point

        async def commit() -> None:
            changes = trader.take_changes()
            made.update(fill.id for fill in changes.fills)
            if changes.equity_point is not None:
                points[changes.equity_point.ts] = changes.equity_point
            await writer.write(changes, epoch=epoch)

        for serial, step in enumerate(script):
            if step[0] == "commit":
                await commit()
                continue
            if step[0] == "clock":
                clock.now += timedelta(hours=step[1])
                continue
            command = command_for(trader, step, serial)
            if command is None:
                continue
            with contextlib.suppress(errors.RiskRefusedError, errors.ConflictError, errors.NotFoundError):
                trader.apply(command)  # a refused command changes nothing, which the reload must show too
        await commit()
        reloaded = new_engine(await store.load(), clock)
        assert snapshot(reloaded) == snapshot(trader)
        assert await store.fills() == made
        assert await store.equity_points() == points
    finally:
        await writer.close()


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop:
        yield loop


@pytest.fixture(scope="module")
def postgres_store(postgres_server: services.PostgresServer, runner: asyncio.Runner) -> Iterator[Store]:
    url = postgres_server.create_database()
    migrations.upgrade(url)
    database = Database(url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield Store(database, postgres=True)
    runner.run(database.close())
    postgres_server.drop_database(url)


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory, runner: asyncio.Runner) -> Iterator[Store]:
    path = Path(tmp_path_factory.mktemp("journal")) / "journal.db"
    migrations.upgrade(f"sqlite:///{path}")
    copy = path.with_name("copy.db")
    shutil.copy(path, copy)
    database = Database(f"sqlite+aiosqlite:///{copy}")
    yield Store(database, postgres=False)
    runner.run(database.close())


PROPERTY = settings(
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@PROPERTY
@given(script=steps)
def test_a_reloaded_engine_equals_the_one_that_wrote_on_postgres(
    postgres_store: Store, runner: asyncio.Runner, script: list[tuple[Any, ...]]
) -> None:
    runner.run(round_trip(postgres_store, script))


@PROPERTY
@given(script=steps)
def test_a_reloaded_engine_equals_the_one_that_wrote_on_sqlite(
    sqlite_store: Store, runner: asyncio.Runner, script: list[tuple[Any, ...]]
) -> None:
    runner.run(round_trip(sqlite_store, script))


def test_a_deposed_writer_commits_nothing(postgres_store: Store, runner: asyncio.Runner) -> None:
    async def scenario() -> None:
        await postgres_store.reset()
        writer = await postgres_store.connect()
        try:
            async with postgres_store.database.engine.connect() as connection:
                epoch = await journal.claim(connection, address="http://old", now=START)
                trader = new_engine(await postgres_store.load(), Clock())
                trader.apply(
                    command_for(trader, ("tick", "BTC-USD", Decimal(100), 1, 10), 0) or records.SetLimits({})
                )
                await writer.write(trader.take_changes(), epoch=epoch)  # the precondition: it can write
                await journal.claim(connection, address="http://new", now=START)  # another writer
            trader.apply(records.SetRiskState(domain.RiskState.HALTED, "must not land"))
            with pytest.raises(journal.FencedError):
                await writer.write(trader.take_changes(), epoch=epoch)
            state = await postgres_store.load()
            assert state.account.risk_state is domain.RiskState.ACTIVE
        finally:
            await writer.close()

    runner.run(scenario())
