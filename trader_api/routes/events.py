"""``GET /v1/events``: Server-Sent Events of orders, fills, signals and risk changes.

Each event is ``event: <type>`` (``order``, ``fill``, ``portfolio``, ``risk``, ``signal``)
and ``data: <json>``. Order, fill, portfolio and risk events also carry the account's
sequence number as the SSE ``id:`` (and as ``seq`` in the data): it grows by one per
event, so a client that sees it jump has missed events and re-reads the REST views.

Market data is opt-in: ``types=tick&symbol=BTC-USD`` adds ``event: tick`` frames, the
symbol's newest tick of each ingest batch (market data, not account state: no sequence
number). The dashboard's price chart draws its live candle from them.

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
from sapphire.trader_api.schemas.common import Symbol

router = APIRouter(tags=["events"], route_class=contract.Route)
log = logging.getLogger(__name__)

EVENT_TYPES = ("order", "fill", "portfolio", "risk", "signal")
"""What a stream carries when ``types`` is not given."""
TYPE = "(order|fill|portfolio|risk|signal|tick)"


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
        Query(pattern=rf"^{TYPE}(,{TYPE})*$"),
    ] = None,
    symbol: Annotated[Symbol | None, Query(description="The symbol whose ticks ``tick`` streams.")] = None,
) -> StreamingResponse:
    """Stream events as they happen; ``types=order,fill`` narrows the stream."""
    wanted = frozenset(types.split(",")) if types else frozenset(EVENT_TYPES)
    if "tick" in wanted and symbol is None:
        raise errors.FieldError(["query", "symbol"], "types=tick needs the symbol whose ticks to stream")
    channels = [runtime.names.events]
    ticks = runtime.names.ticks(symbol) if "tick" in wanted and symbol is not None else None
    if ticks is not None:
        channels.append(ticks)
    stack = contextlib.AsyncExitStack()
    try:
        subscription = await stack.enter_async_context(runtime.bus.subscribe(channels))
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
                if message.channel == ticks:
                    yield f"event: tick\ndata: {message.data}\n\n"
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
