"""Signals, agent heartbeats and statistics, and headlines."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from sapphire.trader_api import errors
from sapphire.trader_api.core import accounting, domain
from sapphire.trader_api.schemas.signals import HeadlineCreate, HeartbeatCreate, SignalCreate, SignalPublic
from sapphire.trader_api.services.publisher import Publication, Publisher
from sapphire.trader_api.services.runtime import Runtime, dumps
from sapphire.trader_api.storage import tables

ALIVE_WITHIN = timedelta(seconds=60)


async def store_signal(runtime: Runtime, publisher: Publisher, request: SignalCreate) -> tables.Signal:
    """Persist one signal, then publish it (after the commit: durable before visible).

    While the bus is known to be down the signal is refused (503) before anything is
    written; a commit whose publication then fails is published once the bus is back.

    A registered agent signals under the role it registered with (its heartbeat, sent from
    its TradingAgent's ``spec.role``), or the signal is refused (422 naming ``role``): a
    ``volatility`` vote from a momentum agent would damp every position."""
    publisher.check()
    async with runtime.database.write() as session:
        registered = await session.get(tables.Agent, request.agent)
        if registered is not None and registered.role != request.role:
            raise errors.FieldError(
                ["body", "role"],
                f"agent {request.agent!r} is registered with role {registered.role!r}, not '{request.role}'",
            )
        row = tables.Signal(id=uuid.uuid4(), created_at=runtime.clock(), **request.model_dump())
        session.add(row)
    data = SignalPublic.model_validate(row).model_dump(mode="json")
    publisher.enqueue(
        Publication(
            messages=[
                (runtime.names.signals, dumps(data)),
                (runtime.names.events, dumps({"type": "signal", "data": data})),
            ]
        )
    )
    runtime.metrics.signals.labels(request.role).inc()
    return row


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


def is_alive(agent: tables.Agent, now: datetime) -> bool:
    return now - agent.last_heartbeat_at <= ALIVE_WITHIN


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
