"""The lean route of ``POST /v1/orders``: the hottest request, served in plain ASGI.

Measured (``bench/order_intake.py``), FastAPI's dependency solving, routing and middleware
cost the order route more CPU than the order engine and the journal together. This
route does what the FastAPI route does, minus that machinery: the bearer token checked
(``auth.granted_scope``), the body decoded by the same msgspec codec (``wire.decode_order``),
the order submitted through the same service (``services/trading.py``) and answered from
the engine's record, errors worded by the same function as the app's handlers
(``answers.error_answer``), and the same request metrics.

It answers only what it can answer exactly as the FastAPI route would; everything else is
handed, untouched, to the full app, whose answer is then the reference one:

* a replica that is not the writer (forwarding is the full app's job);
* a missing, malformed, unknown or too weak token (401/403, worded by ``auth.authorize``);
* a body the fast codec refuses (the 422 or 400 is FastAPI's, byte for byte: the body
  already read is replayed to the full app);
* a ``root_path`` (the app is mounted): routing is the full app's.

The FastAPI route stays registered behind it: it documents ``POST /v1/orders`` in the
OpenAPI document and answers the requests handed on.
"""

from __future__ import annotations

import time

from fastapi.exceptions import HTTPException, RequestValidationError
from prometheus_client import Counter
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sapphire.trader_api import answers, auth, metrics, wire
from sapphire.trader_api.schemas.dump import Dump
from sapphire.trader_api.schemas.orders import OrderPublic
from sapphire.trader_api.services import trading
from sapphire.trader_api.services.writer import Role
from sapphire.trader_api.settings import TraderApiSettings

PATH = "/v1/orders"
ROUTE = PATH
"""The route label of the request metrics, as ``app._route_template`` gives it."""

_ORDER = Dump.of(OrderPublic)
_JSON = (b"content-type", b"application/json")


class OrderRoute:
    """``state`` is the app's state: its ``runtime`` and ``writer`` exist once the lifespan has started."""

    def __init__(self, app: ASGIApp, *, state: State, registry: metrics.Metrics) -> None:
        self.app, self.state, self.metrics = app, state, registry
        self._counted: dict[int, Counter] = {}
        self._latency = registry.latency.labels("POST", ROUTE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _is_order_intake(scope):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        writer = getattr(self.state, "writer", None)
        runtime = getattr(self.state, "runtime", None)
        if writer is None or runtime is None or writer.role is not Role.WRITER:
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
        try:
            request = wire.decode_order(body, content_type=content_type)
        except (RequestValidationError, HTTPException):
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            order, created = await trading.submit(runtime, writer, request)
        except Exception as error:
            answer = answers.error_answer(error)
            if answer is None:
                raise
            status, content = answer.status_code, bytes(answer.body)
            headers = [(k, v) for k, v in answer.raw_headers if k != b"content-length"]
        else:
            status, content, headers = 201 if created else 200, _ORDER.json(order), [_JSON]
        headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})
        self._count(status)
        self._latency.observe(time.perf_counter() - started)

    def _count(self, status: int) -> None:
        counter = self._counted.get(status)
        if counter is None:
            counter = self._counted[status] = self.metrics.requests.labels("POST", ROUTE, str(status))
        counter.inc()


def _is_order_intake(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope["path"] == PATH
        and scope["method"] == "POST"
        and not scope.get("root_path")
    )


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
