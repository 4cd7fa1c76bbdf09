"""The lean ``POST /v1/orders`` route answers exactly as the FastAPI route it stands in front of.

The same requests go, in the same order and at the same clock, to two apps on databases of
their own: the app as it runs (lean route first) and the same app with the lean route taken
out of its middleware, so FastAPI's route answers everything. Status, content type and body
must agree, ids aside (each app draws its own)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from sapphire.trader_api.app import create_app
from sapphire.trader_api.order_route import OrderRoute
from tests.support import services
from tests.trader_api.support import AGENT, READ, ManualClock, make_settings, order, tick

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

REQUESTS: list[tuple[str, dict[str, str], Any]] = [
    ("a resting limit order", AGENT, order("p1", limit_price="99.00", quantity="0.5")),
    ("its exact repeat", AGENT, order("p1", limit_price="99.00", quantity="0.5")),
    ("its id with another body", AGENT, order("p1", limit_price="99.00", quantity="0.6")),
    ("a market order that fills", AGENT, order("p2", quantity="0.25")),
    ("a risk refusal", AGENT, order("p3", quantity="1000")),
    ("an unknown symbol", AGENT, order("p4", symbol="NOPE-USD")),
    ("a quantity off the lot", AGENT, order("p5", quantity="0.00001")),
    ("a price off the tick", AGENT, order("p6", limit_price="99.001")),
    ("a missing field", AGENT, {"client_order_id": "p7", "symbol": "BTC-USD", "side": "buy"}),
    ("a read token", READ, order("p8")),
    ("no token", {}, order("p9")),
    ("not JSON", AGENT, b"{not json"),
]


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, str):
        return UUID.sub("<id>", value)
    return value


@pytest.fixture
def databases(postgres_server: services.PostgresServer, migrated_template: str) -> Iterator[list[str]]:
    urls = [postgres_server.create_database(template=migrated_template) for _ in range(2)]
    yield [url.replace("postgresql://", "postgresql+psycopg://", 1) for url in urls]
    for url in urls:
        postgres_server.drop_database(url)


async def _answers(database_url: str, redis_url: str, *, lean: bool) -> AsyncIterator[tuple[int, str, Any]]:
    settings = make_settings(database_url, redis_url, f"t{uuid.uuid4().hex[:10]}:")
    app = create_app(settings, clock=ManualClock())
    if not lean:  # before the first request builds the middleware stack
        app.user_middleware = [m for m in app.user_middleware if m.cls is not OrderRoute]  # type: ignore[comparison-overlap]
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        clock_now = ManualClock().now
        ticks = [tick("BTC-USD", "100.00", "100.10", ts=clock_now)]
        assert (await client.post("/v1/ticks", json={"ticks": ticks}, headers=AGENT)).status_code == 200
        for _, headers, body in REQUESTS:
            if isinstance(body, bytes):
                answer = await client.post(
                    "/v1/orders", content=body, headers={**headers, "Content-Type": "application/json"}
                )
            else:
                answer = await client.post("/v1/orders", json=body, headers=headers)
            yield answer.status_code, answer.headers.get("content-type", ""), _masked(answer.json())
        # The precondition that makes the comparison mean something: which app had the lean route.
        assert (OrderRoute in _layers(app.middleware_stack)) is lean


def _layers(app: Any) -> list[type]:
    """The classes of an ASGI middleware chain, outermost first."""
    layers = []
    while app is not None:
        layers.append(type(app))
        app = getattr(app, "app", None)
    return layers


async def test_the_lean_route_answers_every_request_as_fastapi_does(
    databases: list[str], redis_url: str
) -> None:
    lean = [answer async for answer in _answers(databases[0], redis_url, lean=True)]
    full = [answer async for answer in _answers(databases[1], redis_url, lean=False)]
    statuses = [status for status, _, _ in lean]
    assert statuses == [201, 200, 409, 201, 422, 422, 422, 422, 422, 403, 401, 422]
    for (what, _, _), mine, reference in zip(REQUESTS, lean, full, strict=True):
        assert mine == reference, what
