"""Signals, agent heartbeats and statistics, and headlines."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from sapphire.trader_api import errors
from sapphire.trader_api.core import accounting, domain
from sapphire.trader_api.schemas import dump
from sapphire.trader_api.schemas.signals import (
    AgentPublic,
    HeadlineCreate,
    HeartbeatCreate,
    SignalCreate,
    SignalPublic,
)
from sapphire.trader_api.services import batching
from sapphire.trader_api.services.publisher import Publication, Publisher
from sapphire.trader_api.services.runtime import Runtime
from sapphire.trader_api.storage import signal_store, tables

MAX_CLOCK_SKEW = timedelta(seconds=60)
"""How far ahead of the API's clock a signal's own timestamp may be."""


@dataclasses.dataclass
class _Pending:
    request: SignalCreate
    received_at: datetime
    future: asyncio.Future[bytes]


_PUBLIC = dump.Dump.of(SignalPublic)


class SignalJournal:
    """Signals stored in batches (group commit), acknowledged and published only after.

    A signal is checked as it arrives (the wire model, its timestamp), then queued; the
    journal takes every queued signal at once (up to ``max_batch``) and stores the batch in
    one transaction (one fsync for the lot; :mod:`~sapphire.trader_api.storage.signal_store`),
    which also checks each signal against its agent's registered role. Only after the commit
    does it answer the callers (201) and hand the batch to the publisher, in one publication:
    durable before visible. A batch that cannot commit answers every caller 503 and nothing
    of it is published.

    A registered agent signals under the role it registered with (its heartbeat, sent from
    its TradingAgent's ``spec.role``), or the signal is refused (422 naming ``role``): a
    ``volatility`` vote from a momentum agent would damp every position."""

    def __init__(self, runtime: Runtime, publisher: Publisher, *, max_batch: int = 1000) -> None:
        self.runtime, self.publisher, self.max_batch = runtime, publisher, max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._store: signal_store.SignalStore | None = None

    async def submit(self, request: SignalCreate) -> bytes:
        """The stored signal as the wire shows it (``SignalPublic``'s JSON), once its batch
        has committed."""
        self.publisher.check()  # the bus is down: refused (503) before anything is written
        now = self.runtime.clock()
        if request.ts is not None and request.ts > now + MAX_CLOCK_SKEW:
            raise errors.FieldError(
                ["body", "ts"],
                f"is {(request.ts - now).total_seconds():.0f}s in the future "
                f"(at most {MAX_CLOCK_SKEW.seconds}s allowed)",
            )
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(request, now, future))
        return await future

    async def run(self) -> None:
        try:
            while True:
                first = await self._queue.get()
                await self._commit(await batching.gather(self._queue, [first], max_batch=self.max_batch))
        finally:
            if self._store is not None:
                await self._store.close()

    async def _commit(self, batch: list[_Pending]) -> None:
        rows = [_row(pending) for pending in batch]
        try:
            if self._store is None:
                self._store = signal_store.open_store(self.runtime.database)
            refused = await self._store.store(rows)
        except Exception as error:  # any failure: nothing of the batch was stored
            refusal = errors.UnavailableError(
                f"the signal could not be stored ({type(error).__name__}); nothing was written: retry"
            )
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(refusal)
            return
        publication = Publication()
        names = self.runtime.names
        for pending, row in zip(batch, rows, strict=True):
            registered = refused.get(row.id)
            if registered is not None:
                if not pending.future.done():
                    pending.future.set_exception(
                        errors.FieldError(
                            ["body", "role"],
                            f"agent {row.agent!r} is registered with role {registered!r}, not '{row.role}'",
                        )
                    )
                continue
            data = _PUBLIC.json(row)
            text = data.decode()
            publication.messages.append((names.signals, text))
            publication.messages.append((names.events, f'{{"type":"signal","data":{text}}}'))
            self.runtime.metrics.signals.labels(row.role).inc()
            if not pending.future.done():  # the caller went away; its signal committed regardless
                pending.future.set_result(data)
        self.publisher.enqueue(publication)


def _row(pending: _Pending) -> signal_store.SignalRow:
    request = pending.request
    return signal_store.SignalRow(
        id=uuid.uuid4(),
        agent=request.agent,
        role=request.role,
        symbol=request.symbol,
        direction=request.direction,
        strength=request.strength,
        confidence=request.confidence,
        horizon_seconds=request.horizon_seconds,
        rationale=request.rationale,
        model=request.model,
        ts=request.ts or pending.received_at,
        created_at=pending.received_at,
    )


async def list_signals(
    runtime: Runtime, *, agent: str | None, symbol: str | None, since: datetime | None, limit: int
) -> list[tables.Signal]:
    statement = sa.select(tables.Signal)
    if agent is not None:
        statement = statement.where(tables.Signal.agent == agent)
    if symbol is not None:
        statement = statement.where(tables.Signal.symbol == symbol)
    if since is not None:
        statement = statement.where(tables.Signal.created_at >= since)
    statement = statement.order_by(tables.Signal.created_at.desc(), tables.Signal.id).limit(limit)
    async with runtime.database.read() as session:
        return list((await session.execute(statement)).scalars().all())


async def heartbeat(runtime: Runtime, name: str, request: HeartbeatCreate) -> tables.Agent:
    now = runtime.clock()
    for attempt in range(2):
        try:
            async with runtime.database.write() as session:
                statement = sa.select(tables.Agent).where(tables.Agent.name == name).with_for_update()
                row = (await session.execute(statement)).scalar_one_or_none()
                if row is None:
                    row = tables.Agent(name=name, registered_at=now)
                    session.add(row)
                row.role, row.symbols, row.last_heartbeat_at = request.role, list(request.symbols), now
                row.model = request.model
            return row
        except sa.exc.IntegrityError:
            # Two first heartbeats of one agent raced to insert; the second now finds the row.
            if attempt:
                raise
    raise AssertionError("unreachable")


def is_alive(agent: tables.Agent, now: datetime, stale_after_seconds: float) -> bool:
    """Whether the agent's last heartbeat is at most ``stale_after_seconds`` old."""
    return now - agent.last_heartbeat_at <= timedelta(seconds=stale_after_seconds)


def agent_public(agent: tables.Agent, now: datetime, stale_after_seconds: float) -> AgentPublic:
    """The agent as ``/v1/agents`` shows it."""
    return AgentPublic(
        name=agent.name,
        role=agent.role,
        symbols=agent.symbols,
        registered_at=agent.registered_at,
        last_heartbeat_at=agent.last_heartbeat_at,
        model=agent.model,
        alive=is_alive(agent, now, stale_after_seconds),
    )


async def list_agents(runtime: Runtime) -> list[tables.Agent]:
    async with runtime.database.read() as session:
        return list(
            (await session.execute(sa.select(tables.Agent).order_by(tables.Agent.name))).scalars().all()
        )


async def agent_stats(runtime: Runtime, name: str) -> dict[str, object]:
    now = runtime.clock()
    async with runtime.database.read() as session:
        agent = await session.get(tables.Agent, name)
        signal_count, last_signal_at = (
            await session.execute(
                sa.select(sa.func.count(), sa.func.max(tables.Signal.created_at)).where(
                    tables.Signal.agent == name
                )
            )
        ).one()
        recent = await session.scalar(
            sa.select(sa.func.count()).where(
                tables.Signal.agent == name, tables.Signal.created_at >= now - timedelta(hours=1)
            )
        )
        statuses = (
            await session.execute(
                sa.select(tables.Order.status, sa.func.count())
                .where(tables.Order.agent == name)
                .group_by(tables.Order.status)
            )
        ).all()
        # Decimals are summed in Python: SQLite keeps them as strings.
        orders_recent = await session.scalar(
            sa.select(sa.func.count()).where(
                tables.Order.agent == name, tables.Order.created_at >= now - timedelta(hours=1)
            )
        )
        fills = list(
            (
                await session.execute(
                    sa.select(tables.Fill)
                    .where(tables.Fill.agent == name)
                    .order_by(tables.Fill.ts, tables.Fill.id)
                )
            ).scalars()
        )
        rows = (await session.execute(sa.select(tables.Position.symbol, tables.Position.mark))).all()
        marks = {symbol: mark for symbol, mark in rows}
    book = agent_book(fills, marks)
    by_status = {status: count for status, count in statuses}
    return {
        "name": name,
        "last_signal_at": last_signal_at,
        "signals_last_hour": int(recent or 0),
        "signal_count": int(signal_count),
        "orders": sum(by_status.values()),
        "open_orders": sum(
            count for status, count in by_status.items() if domain.OrderStatus(status).is_open
        ),
        "filled_orders": by_status.get(domain.OrderStatus.FILLED.value, 0),
        "orders_last_hour": int(orders_recent or 0),
        "fills": len(fills),
        "realized_pnl": book.realized_pnl,
        "unrealized_pnl": book.unrealized_pnl,
        "gross_exposure": book.gross_exposure,
        "fees": book.fees,
        "last_heartbeat_at": agent.last_heartbeat_at if agent is not None else None,
    }


def agent_book(fills: list[tables.Fill], marks: dict[str, Decimal]) -> accounting.Portfolio:
    """The agent's own trades as a sub-account: its fills replayed through the accounting
    core, marked at the account's current marks. This is the PnL attributed to the agent."""
    book = accounting.Portfolio(cash=Decimal(0))
    for fill in fills:
        book = accounting.apply_fill(
            book, accounting.Fill(fill.symbol, domain.Side(fill.side), fill.quantity, fill.price, fill.fee)
        )
    for symbol, mark in marks.items():
        book = accounting.mark_to_market(book, symbol, mark)
    return book


async def store_headline(runtime: Runtime, request: HeadlineCreate) -> tables.Headline:
    async with runtime.database.write() as session:
        row = tables.Headline(id=uuid.uuid4(), created_at=runtime.clock(), **request.model_dump())
        session.add(row)
    return row


async def list_headlines(
    runtime: Runtime, *, symbol: str | None, since: datetime | None, limit: int
) -> list[tables.Headline]:
    statement = sa.select(tables.Headline)
    if symbol is not None:
        statement = statement.where(tables.Headline.symbol == symbol)
    if since is not None:
        statement = statement.where(tables.Headline.ts >= since)
    statement = statement.order_by(tables.Headline.ts.desc(), tables.Headline.id).limit(limit)
    async with runtime.database.read() as session:
        return list((await session.execute(statement)).scalars().all())
