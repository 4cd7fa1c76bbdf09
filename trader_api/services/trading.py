"""Order intake and cancels: the shell around the order engine's writer.

What does not depend on the account's state (the instrument, lot and tick sizes) is
checked here, before the command is queued; everything else is the engine's decision
(``core/engine.py``), answered once its batch has committed (``services/writer.py``).
"""

from __future__ import annotations

import hashlib
import uuid
from decimal import Decimal
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from sapphire.trader_api import errors
from sapphire.trader_api.core import domain, records, venue
from sapphire.trader_api.schemas.orders import REPLACED_FIELDS, OrderReplace, OrderShape
from sapphire.trader_api.services.runtime import Catalog, Runtime
from sapphire.trader_api.services.writer import Writer
from sapphire.trader_api.storage import books, journal, tables


class OrderRequest(OrderShape, Protocol):
    """An order as the wire decoded it (the pydantic model or the fast codec's struct)."""

    @property
    def client_order_id(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> domain.Side: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def time_in_force(self) -> domain.TimeInForce: ...
    @property
    def agent(self) -> str | None: ...


def request_hash(request: OrderRequest) -> str:
    """A fingerprint of the order body; equal decimals ("1.0" and "1") hash alike.

    The protective-order fields count only when given, so the fingerprints of orders
    stored before they existed are unchanged."""
    fields: dict[str, object] = {
        "agent": request.agent,
        "client_order_id": request.client_order_id,
        "limit_price": request.limit_price,
        "quantity": request.quantity,
        "side": request.side,
        "symbol": request.symbol,
        "time_in_force": request.time_in_force,
        "type": request.type,
    }
    for name in ("stop_price", "trail_amount", "trail_bps", "oco_group"):
        value = getattr(request, name)
        if value is not None:
            fields[name] = value
    attached = attached_record(request)
    if attached is not None:
        fields |= {f"attached.{name}": value for name, value in attached.given().items()}
    parts = []
    for name, value in sorted(fields.items()):
        shown = format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)
        parts.append(f"{name}={shown}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def attached_record(request: OrderRequest) -> records.Attached | None:
    given = request.attached
    if given is None:
        return None
    return records.Attached(**{name: getattr(given, name) for name in records.Attached.FIELDS})


def submit_command(request: OrderRequest, catalog: Catalog) -> records.SubmitOrder:
    """The engine command for ``request``; FieldError for an unknown instrument or off-grid size."""
    instrument = catalog.require(request.symbol, ["body", "symbol"])
    if not venue.is_multiple(request.quantity, instrument.lot_size):
        raise errors.FieldError(
            ["body", "quantity"], f"must be a multiple of the lot size {instrument.lot_size}"
        )
    attached = attached_record(request)
    prices: list[tuple[list[str | int], Decimal | None]] = [
        (["body", name], getattr(request, name)) for name in ("limit_price", "stop_price", "trail_amount")
    ]
    if attached is not None:
        prices += [
            (["body", "attached", name], getattr(attached, name))
            for name in ("stop_price", "trail_amount", "take_profit_price")
        ]
    for location, price in prices:
        if price is not None and not venue.is_multiple(price, instrument.tick_size):
            raise errors.FieldError(location, f"must be a multiple of the tick size {instrument.tick_size}")
    return records.SubmitOrder(
        client_order_id=request.client_order_id,
        request_hash=request_hash(request),
        symbol=request.symbol,
        side=request.side,
        type=request.type,
        quantity=request.quantity,
        limit_price=request.limit_price,
        time_in_force=request.time_in_force,
        agent=request.agent,
        stop_price=request.stop_price,
        trail_amount=request.trail_amount,
        trail_bps=request.trail_bps,
        oco_group=request.oco_group,
        attached=attached,
    )


async def submit(runtime: Runtime, writer: Writer, request: OrderRequest) -> tuple[records.Order, bool]:
    """Accept, fill or rest one order once it is durable. Returns the order and whether it is new.

    Raises ConflictError on a reused ``client_order_id`` with a different body,
    RiskRefusedError when a risk rule refuses (nothing is stored), UnavailableError
    when the engine cannot persist or the bus cannot publish."""
    result = await writer.submit(submit_command(request, runtime.catalog))
    return await _order_of(runtime, result)


async def _order_of(runtime: Runtime, result: records.Result) -> tuple[records.Order, bool]:
    """The order an intake answered, read back when the engine no longer holds it."""
    if isinstance(result, records.OrderReplayed):
        async with runtime.database.engine.connect() as connection:
            order = await journal.load_order(connection, result.order_id)
        if order is None:  # the index and the table are written in one transaction
            raise errors.UnavailableError(f"order {result.order_id} is indexed but not stored: retry")
        return order, False
    if not isinstance(result, records.OrderAccepted):
        raise TypeError(f"unexpected engine result {result!r}")
    return result.order, result.created


def replace_command(order_id: uuid.UUID, request: OrderReplace) -> records.ReplaceOrder:
    """The engine command of an amend; its fingerprint covers the order and every field given."""
    changes = {name: getattr(request, name) for name in REPLACED_FIELDS if getattr(request, name) is not None}
    parts = [f"order_id={order_id}", f"client_order_id={request.client_order_id}"]
    parts += [f"{name}={format(value.normalize(), 'f')}" for name, value in sorted(changes.items())]
    return records.ReplaceOrder(
        order_id=order_id,
        client_order_id=request.client_order_id,
        request_hash=hashlib.sha256("replace\n".join(parts).encode()).hexdigest(),
        **changes,
    )


async def replace(
    runtime: Runtime, writer: Writer, order_id: uuid.UUID, request: OrderReplace
) -> tuple[records.Order, bool]:
    """Amend an open order once durable; the order and whether this request amended it
    (False: a repeat of an earlier replace). NotFoundError, ConflictError (closed, or the
    client_order_id used for another request), FieldError, RiskRefusedError as submit."""
    result = await _on_open_order(runtime, writer, replace_command(order_id, request), "amended")
    return await _order_of(runtime, result)


async def _on_open_order(
    runtime: Runtime, writer: Writer, command: records.CancelOrder | records.ReplaceOrder, verb: str
) -> records.Result:
    """Apply a command on an open order; an order the engine no longer holds is either
    unknown (404) or closed (409), as the table says."""
    try:
        return await writer.submit(command)
    except errors.NotFoundError:
        async with runtime.database.engine.connect() as connection:
            stored = await journal.load_order(connection, command.order_id)
        if stored is None:
            raise errors.NotFoundError(f"order {command.order_id} not found") from None
        raise errors.ConflictError(
            f"order {command.order_id} is {stored.status.value}: only open orders can be {verb}"
        ) from None


async def cancel(runtime: Runtime, writer: Writer, order_id: uuid.UUID) -> records.Order:
    result = await _on_open_order(runtime, writer, records.CancelOrder(order_id), "canceled")
    if not isinstance(result, records.OrderAccepted):
        raise TypeError(f"unexpected engine result {result!r}")
    return result.order


async def order_by_id(session: AsyncSession, order_id: uuid.UUID) -> tables.Order | None:
    return await books.order_by_id(session, order_id)


async def list_orders(
    session: AsyncSession, *, status: str | None, symbol: str | None, agent: str | None, limit: int
) -> list[tables.Order]:
    statement = sa.select(tables.Order)
    if status is not None:
        statement = statement.where(tables.Order.status == status)
    if symbol is not None:
        statement = statement.where(tables.Order.symbol == symbol)
    if agent is not None:
        statement = statement.where(tables.Order.agent == agent)
    statement = statement.order_by(tables.Order.created_at.desc(), tables.Order.id).limit(limit)
    return list((await session.execute(statement)).scalars().all())


async def list_fills(
    session: AsyncSession, *, order_id: uuid.UUID | None, symbol: str | None, agent: str | None, limit: int
) -> list[tables.Fill]:
    statement = sa.select(tables.Fill)
    if order_id is not None:
        statement = statement.where(tables.Fill.order_id == order_id)
    if symbol is not None:
        statement = statement.where(tables.Fill.symbol == symbol)
    if agent is not None:
        statement = statement.where(tables.Fill.agent == agent)
    statement = statement.order_by(tables.Fill.ts.desc(), tables.Fill.id).limit(limit)
    return list((await session.execute(statement)).scalars().all())
