"""Writes that reach a follower replica are forwarded to the account's writer.

Any replica serves reads from the tables. The order engine's writes (orders, cancels,
ticks, the kill switch and limits) must reach the one writer (``services/writer.py``), so
a follower sends them on, unchanged, to the address the writer recorded in the account
row, and relays the answer. A forwarded request carries ``X-Sapphire-Forwarded``; one
that reaches a replica that is not the writer either (an election is under way) gets 503
with ``Retry-After`` rather than bouncing between replicas.
"""

from __future__ import annotations

import logging

import httpx
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sapphire.trader_api.services.writer import Role, Writer

log = logging.getLogger(__name__)

FORWARDED = "x-sapphire-forwarded"
_PASSED_HEADERS = ("authorization", "content-type", "accept")


def is_engine_write(method: str, path: str) -> bool:
    if method not in ("POST", "PUT"):
        return False
    return path in ("/v1/orders", "/v1/ticks", "/v1/risk/state", "/v1/risk/limits") or (
        path.startswith("/v1/orders/") and path.endswith(("/cancel", "/replace"))
    )


class ForwardingMiddleware:
    """``state`` is the app's state: its ``writer`` exists once the lifespan has started."""

    def __init__(self, app: ASGIApp, *, state: State, timeout: float) -> None:
        self.app, self.state = app, state
        self.client = httpx.AsyncClient(timeout=timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writer: Writer | None = getattr(self.state, "writer", None)
        if (
            scope["type"] != "http"
            or writer is None
            or writer.role is Role.WRITER
            or not is_engine_write(scope["method"], scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        leader = writer.leader
        if FORWARDED in headers or not leader or leader == writer.address:
            await _answer(send, 503, b'{"detail":"no writer is serving this account yet: retry"}')
            return
        body = await _read_body(receive)
        query = scope.get("query_string", b"").decode()
        url = f"{leader}{scope['path']}" + (f"?{query}" if query else "")
        passed = {name: headers[name] for name in _PASSED_HEADERS if name in headers}
        try:
            response = await self.client.request(
                scope["method"], url, content=body, headers={**passed, FORWARDED: writer.address}
            )
        except httpx.HTTPError as error:
            log.warning("forwarding to the writer at %s failed: %s", leader, error)
            await _answer(send, 503, b'{"detail":"the writer did not answer a forwarded write: retry"}')
            return
        await _answer(send, response.status_code, response.content, response.headers.get("content-type"))

    async def aclose(self) -> None:
        await self.client.aclose()


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(
    send: Send, status: int, body: bytes, content_type: str | None = "application/json"
) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type:
        headers.append((b"content-type", content_type.encode()))
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
