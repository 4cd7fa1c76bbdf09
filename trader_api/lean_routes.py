"""The lean routes of the hot requests, served in plain ASGI: ``POST /v1/orders``,
``POST /v1/signals`` and ``POST /v1/ticks``.

Measured (``bench/order_intake.py``, ``bench/tick_to_order.py``), FastAPI's routing,
dependency solving and middleware cost these requests more of the API's CPU than the
order engine and the journals behind them: FastAPI matches a request against every
route of every included router before the one it wants. Each lean route does what its
FastAPI route does, minus that machinery: the bearer token checked
(``auth.granted_scope``), the body decoded by the same codec (``wire.decode_order``,
``wire.decode_ticks``; a signal by its pydantic model, whose checks are the route's), the
same service called (``services/trading.py``, ``services/ingest.py``,
``services/signals.py``), errors worded by the same function as the app's handlers
(``answers.error_answer``), and the same request metrics.

A lean route answers only what it can answer exactly as the FastAPI route would;
everything else is handed, untouched, to the full app, whose answer is then the
reference one:

* an order or ticks on a replica that is not the writer (forwarding is the full app's job);
* a missing, malformed, unknown or too weak token (401/403, worded by ``auth.authorize``);
* a body the codec refuses (the 422 or 400 is FastAPI's, byte for byte: the body already
  read is replayed to the full app);
* a ``root_path`` (the app is mounted): routing is the full app's.

The FastAPI routes stay registered behind them: they document the routes in the OpenAPI
document and answer the requests handed on.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi.exceptions import HTTPException, RequestValidationError
from prometheus_client import Counter, Histogram
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sapphire.trader_api import answers, auth, metrics, wire
from sapphire.trader_api.schemas.dump import Dump
from sapphire.trader_api.schemas.market import TicksAccepted
from sapphire.trader_api.schemas.orders import OrderPublic
from sapphire.trader_api.schemas.signals import SignalCreate
from sapphire.trader_api.services import ingest, trading
from sapphire.trader_api.services.runtime import Runtime
from sapphire.trader_api.services.writer import Role
from sapphire.trader_api.settings import TraderApiSettings

ORDERS, SIGNALS, TICKS = "/v1/orders", "/v1/signals", "/v1/ticks"
"""The paths, which are also the route labels of the request metrics (as
``app._route_template`` gives them)."""

_ORDER = Dump.of(OrderPublic)
_ACCEPTED = Dump.of(TicksAccepted)
_SIGNAL = TypeAdapter(SignalCreate)
_JSON = (b"content-type", b"application/json")


class HandOverError(Exception):
    """Not an error: the full app answers this request (its body, already read, is replayed to it)."""


Answer = tuple[int, bytes]
"""A status and a JSON body."""
Handler = Callable[[Runtime, State, bytes, str | None], Awaitable[Answer]]


async def _order(runtime: Runtime, state: State, body: bytes, content_type: str | None) -> Answer:
    try:
        request = wire.decode_order(body, content_type=content_type)
    except (RequestValidationError, HTTPException):
        raise HandOverError from None
    order, created = await trading.submit(runtime, state.writer, request)
    return 201 if created else 200, _ORDER.json(order)


async def _ticks(runtime: Runtime, state: State, body: bytes, content_type: str | None) -> Answer:
    try:
        batch = wire.decode_ticks(body, content_type=content_type)
    except (RequestValidationError, HTTPException):
        raise HandOverError from None
    accepted = await ingest.ingest(runtime, state.writer, batch.quotes())
    return 200, _ACCEPTED.json(None, accepted=accepted)


async def _signal(runtime: Runtime, state: State, body: bytes, content_type: str | None) -> Answer:
    # What FastAPI does for a model-typed body: JSON only (wire's test), then the model.
    if not body or not wire.is_json(content_type):
        raise HandOverError
    try:
        request = _SIGNAL.validate_json(body)
    except ValidationError:
        raise HandOverError from None
    return 201, await state.signal_journal.submit(request)


class _Route:
    def __init__(self, path: str, handler: Handler, *, needs_writer: bool, registry: metrics.Metrics) -> None:
        self.path, self.handler, self.needs_writer = path, handler, needs_writer
        self.latency: Histogram = registry.latency.labels("POST", path)
        self._registry = registry
        self._counted: dict[int, Counter] = {}

    def count(self, status: int) -> None:
        counter = self._counted.get(status)
        if counter is None:
            counter = self._counted[status] = self._registry.requests.labels("POST", self.path, str(status))
        counter.inc()


class LeanRoutes:
    """``state`` is the app's state: its ``runtime``, ``writer`` and ``signal_journal`` exist
    once the lifespan has started."""

    def __init__(self, app: ASGIApp, *, state: State, registry: metrics.Metrics) -> None:
        self.app, self.state = app, state
        self.routes = {
            ORDERS: _Route(ORDERS, _order, needs_writer=True, registry=registry),
            TICKS: _Route(TICKS, _ticks, needs_writer=True, registry=registry),
            SIGNALS: _Route(SIGNALS, _signal, needs_writer=False, registry=registry),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _route_of(scope, self.routes)
        if route is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = self.state
        runtime: Runtime | None = getattr(state, "runtime", None)
        writer = getattr(state, "writer", None)
        if runtime is None or writer is None or (route.needs_writer and writer.role is not Role.WRITER):
            await self.app(scope, receive, send)
            return
        authorization = content_type = None
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
        if not _agent_token(runtime.settings, authorization):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away before its body arrived
            return
        headers: list[tuple[bytes, bytes]]
        try:
            status, content = await route.handler(runtime, state, body, content_type)
        except HandOverError:
            await self.app(scope, _replay(body, receive), send)
            return
        except Exception as error:
            answer = answers.error_answer(error)
            if answer is None:
                raise
            status, content = answer.status_code, bytes(answer.body)
            headers = [(k, v) for k, v in answer.raw_headers if k != b"content-length"]
        else:
            headers = [_JSON]
        headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})
        route.count(status)
        route.latency.observe(time.perf_counter() - started)


def _route_of(scope: Scope, routes: dict[str, _Route]) -> _Route | None:
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
        return None
    return routes.get(scope["path"])


def _agent_token(settings: TraderApiSettings, authorization: str | None) -> bool:
    """True for ``Bearer <token>`` with a token of scope agent or admin (what ``AgentScope`` lets by)."""
    if not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    token = token.strip()  # as fastapi.security.utils.get_authorization_scheme_param
    if scheme.lower() != "bearer" or not token:
        return False
    granted = auth.granted_scope(settings, token)
    return granted is not None and granted >= auth.Scope.AGENT


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body already read given back first."""
    replayed = False

    async def replaying() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replaying
