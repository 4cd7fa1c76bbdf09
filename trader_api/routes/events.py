"""``GET /v1/events``: Server-Sent Events of orders, fills, signals and risk changes.

Each event is ``event: <type>`` (``order``, ``fill``, ``portfolio``, ``risk``, ``signal``)
and ``data: <json>``. Order, fill, portfolio and risk events also carry the account's
sequence number as the SSE ``id:`` (and as ``seq`` in the data): it grows by one per
event, so a client that sees it jump has missed events and re-reads the REST views.

The stream opens with a ``: subscribed`` comment once the subscription is live, and sends
a comment every ``events_heartbeat_seconds`` while idle. If Redis goes away the stream
ends; EventSource clients reconnect by themselves.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from sapphire import bus
from sapphire.trader_api import contract, errors
from sapphire.trader_api.deps import ReadScope, RuntimeDep

router = APIRouter(tags=["events"], route_class=contract.Route)
log = logging.getLogger(__name__)

EVENT_TYPES = ("order", "fill", "portfolio", "risk", "signal")


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An endless event stream"}},
)
async def stream_events(
    request: Request,
    _: ReadScope,
    runtime: RuntimeDep,
    types: Annotated[
        str | None,
        Query(pattern=r"^(order|fill|portfolio|risk|signal)(,(order|fill|portfolio|risk|signal))*$"),
    ] = None,
) -> StreamingResponse:
    """Stream events as they happen; ``types=order,fill`` narrows the stream."""
    wanted = frozenset(types.split(",")) if types else frozenset(EVENT_TYPES)
    stack = contextlib.AsyncExitStack()
    try:
        subscription = await stack.enter_async_context(runtime.bus.subscribe([runtime.names.events]))
    except bus.BusUnavailableError as error:
        await stack.aclose()
        raise errors.UnavailableError(f"message bus unavailable: {error}") from error
    heartbeat = runtime.settings.events_heartbeat_seconds

    async def frames() -> AsyncIterator[str]:
        async with stack:
            yield ": subscribed\n\n"
            while not await request.is_disconnected():
                try:
                    message = await subscription.get(wait_seconds=heartbeat)
                except bus.BusUnavailableError as error:
                    log.warning("event stream ends: %s", error)
                    return
                if message is None:
                    yield ": keep-alive\n\n"
                    continue
                envelope = json.loads(message.data)
                if envelope.get("type") not in wanted:
                    continue
                sequence = envelope.get("seq")
                data = envelope["data"] if sequence is None else {**envelope["data"], "seq": sequence}
                frame_id = "" if sequence is None else f"id: {sequence}\n"
                yield f"{frame_id}event: {envelope['type']}\ndata: {json.dumps(data)}\n\n"

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
