from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from sapphire.trader_api import contract, wire
from sapphire.trader_api.core.domain import OrderStatus
from sapphire.trader_api.deps import AgentScope, ReadScope, RuntimeDep, WriterDep
from sapphire.trader_api.errors import NotFoundError
from sapphire.trader_api.schemas.common import Name, Symbol
from sapphire.trader_api.schemas.dump import Dump
from sapphire.trader_api.schemas.orders import OrderPublic, OrderReplace
from sapphire.trader_api.services import trading

router = APIRouter(tags=["orders"], route_class=contract.Route)
_ORDER = Dump.of(OrderPublic)

_RETRY = {
    "description": "The same client_order_id and body were sent before: the order as it is",
    "model": OrderPublic,
}
_NO_ORDER = contract.NOT_FOUND.saying("No such order")
_NOT_OPEN = contract.CONFLICT.saying("The order is no longer open")


@wire.post(
    router,
    "/orders",
    response_model=OrderPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: _RETRY,
        **contract.responses(
            contract.CONFLICT.saying("The client_order_id was used for a different order"), contract.REFUSED
        ),
    },
)
async def submit_order(
    _: AgentScope, request: wire.OrderBody, runtime: RuntimeDep, writer: WriterDep
) -> Response:
    """Submit an order to the paper venue: 201 when new, 200 when a retry of the same order.
    Either answer means the order is durable."""
    order, created = await trading.submit(runtime, writer, request)
    # The answer is dumped from the engine's record (schemas/dump.py): the model's JSON
    # without building the model, on the hottest route.
    return Response(
        _ORDER.json(order),
        status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        media_type="application/json",
    )


@router.get("/orders", response_model=list[OrderPublic])
async def list_orders(
    _: ReadScope,
    runtime: RuntimeDep,
    status: OrderStatus | None = None,
    symbol: Annotated[Symbol | None, Query()] = None,
    agent: Annotated[Name | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[OrderPublic]:
    """Orders, newest first."""
    async with runtime.database.read() as session:
        rows = await trading.list_orders(
            session, status=status.value if status else None, symbol=symbol, agent=agent, limit=limit
        )
    return [OrderPublic.model_validate(row) for row in rows]


@router.get("/orders/{order_id}", response_model=OrderPublic, responses=contract.responses(_NO_ORDER))
async def get_order(order_id: uuid.UUID, _: ReadScope, runtime: RuntimeDep) -> OrderPublic:
    async with runtime.database.read() as session:
        order = await trading.order_by_id(session, order_id)
    if order is None:
        raise NotFoundError(f"order {order_id} not found")
    return OrderPublic.model_validate(order)


@router.post(
    "/orders/{order_id}/replace",
    response_model=OrderPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: _RETRY,
        **contract.responses(
            _NO_ORDER,
            contract.CONFLICT.saying(
                "The order is no longer open, or the client_order_id was used for another request"
            ),
            contract.REFUSED.saying("A field the order cannot take, or a risk rule refused the amend"),
        ),
    },
)
async def replace_order(
    order_id: uuid.UUID, request: OrderReplace, _: AgentScope, runtime: RuntimeDep, writer: WriterDep
) -> Response:
    """Amend an open order in place (same id and fills): 201 when amended, 200 when a retry of
    the same replace. The amend is checked as a new order, loses time priority, and is worked
    against the current quote at once."""
    order, created = await trading.replace(runtime, writer, order_id, request)
    return Response(
        _ORDER.json(order),
        status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        media_type="application/json",
    )


@router.post(
    "/orders/{order_id}/cancel",
    response_model=OrderPublic,
    responses=contract.responses(_NO_ORDER, _NOT_OPEN),
)
async def cancel_order(
    order_id: uuid.UUID, _: AgentScope, runtime: RuntimeDep, writer: WriterDep
) -> OrderPublic:
    return OrderPublic.model_validate(await trading.cancel(runtime, writer, order_id))
