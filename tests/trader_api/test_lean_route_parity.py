"""The lean routes (``POST /v1/orders``, ``/v1/signals``, ``/v1/ticks``) answer exactly as the
FastAPI routes they stand in front of.

The same requests go, in the same order and at the same clock, to two apps on databases of
their own: the app as it runs (lean routes first) and the same app with the lean routes taken
out of its middleware, so FastAPI's routes answer everything. Status, content type and body
must agree, ids aside (each app draws its own)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from sapphire.trader_api.app import create_app
from sapphire.trader_api.lean_routes import LeanRoutes
from tests.support import services
from tests.trader_api.support import AGENT, READ, ManualClock, make_settings, order, signal, tick

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
NOW = ManualClock().now
"""Both apps' clock (a ManualClock starts at a fixed instant)."""


REQUESTS: list[tuple[str, str, dict[str, str], Any]] = [
    ("a resting limit order", "/v1/orders", AGENT, order("p1", limit_price="99.00", quantity="0.5")),
    ("its exact repeat", "/v1/orders", AGENT, order("p1", limit_price="99.00", quantity="0.5")),
    ("its id with another body", "/v1/orders", AGENT, order("p1", limit_price="99.00", quantity="0.6")),
    ("a market order that fills", "/v1/orders", AGENT, order("p2", quantity="0.25")),
    ("a risk refusal", "/v1/orders", AGENT, order("p3", quantity="1000")),
    ("an unknown symbol", "/v1/orders", AGENT, order("p4", symbol="NOPE-USD")),
    ("a quantity off the lot", "/v1/orders", AGENT, order("p5", quantity="0.00001")),
    ("a price off the tick", "/v1/orders", AGENT, order("p6", limit_price="99.001")),
    ("a missing field", "/v1/orders", AGENT, {"client_order_id": "p7", "symbol": "BTC-USD", "side": "buy"}),
    ("a read token", "/v1/orders", READ, order("p8")),
    ("no token", "/v1/orders", {}, order("p9")),
    ("not JSON", "/v1/orders", AGENT, b"{not json"),
    (
        "ticks that fill the resting order",
        "/v1/ticks",
        AGENT,
        {"ticks": [tick("BTC-USD", "98.90", "99.00", ts=NOW)]},
    ),
    ("ticks of an unknown symbol", "/v1/ticks", AGENT, {"ticks": [tick("NOPE-USD", "1.00", "1.01", ts=NOW)]}),
    (
        "a tick from the future",
        "/v1/ticks",
        AGENT,
        {"ticks": [tick("BTC-USD", "99.00", "99.10", ts=NOW + timedelta(minutes=5))]},
    ),
    ("a bid above the ask", "/v1/ticks", AGENT, {"ticks": [tick("BTC-USD", "99.20", "99.10", ts=NOW)]}),
    ("ticks with a read token", "/v1/ticks", READ, {"ticks": [tick("BTC-USD", "99.00", "99.10", ts=NOW)]}),
    ("an empty batch", "/v1/ticks", AGENT, {"ticks": []}),
    ("a signal", "/v1/signals", AGENT, signal(model="gemini-2.0-flash")),
    ("a signal with its own time", "/v1/signals", AGENT, signal(ts=(NOW - timedelta(seconds=3)).isoformat())),
    ("a signal from the future", "/v1/signals", AGENT, signal(ts=(NOW + timedelta(minutes=5)).isoformat())),
    ("the agent's heartbeat", "/v1/agents/mom-1/heartbeat", AGENT, {"role": "momentum"}),
    ("a signal under another role", "/v1/signals", AGENT, signal(role="volatility")),
    ("a strength beyond 1", "/v1/signals", AGENT, signal(strength="1.5")),
    ("a strength as a number", "/v1/signals", AGENT, signal(strength=0.5)),
    ("a horizon as a string", "/v1/signals", AGENT, signal(horizon_seconds="300")),
    ("an unknown field", "/v1/signals", AGENT, signal(mood="sunny")),
    ("a signal without a symbol", "/v1/signals", AGENT, {k: v for k, v in signal().items() if k != "symbol"}),
    ("a signal with a read token", "/v1/signals", READ, signal()),
    ("a signal without a token", "/v1/signals", {}, signal()),
    ("a signal that is not JSON", "/v1/signals", AGENT, b'{"agent": '),
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
        app.user_middleware = [m for m in app.user_middleware if m.cls is not LeanRoutes]  # type: ignore[comparison-overlap]
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        ticks = [tick("BTC-USD", "100.00", "100.10", ts=NOW)]
        assert (await client.post("/v1/ticks", json={"ticks": ticks}, headers=AGENT)).status_code == 200
        for _, path, headers, body in REQUESTS:
            if isinstance(body, bytes):
                answer = await client.post(
                    path, content=body, headers={**headers, "Content-Type": "application/json"}
                )
            else:
                answer = await client.post(path, json=body, headers=headers)
            yield answer.status_code, answer.headers.get("content-type", ""), _masked(answer.json())
        # The precondition that makes the comparison mean something: which app had the lean routes.
        assert (LeanRoutes in _layers(app.middleware_stack)) is lean


def _layers(app: Any) -> list[type]:
    """The classes of an ASGI middleware chain, outermost first."""
    layers = []
    while app is not None:
        layers.append(type(app))
        app = getattr(app, "app", None)
    return layers


async def test_the_lean_routes_answer_every_request_as_fastapi_does(
    databases: list[str], redis_url: str
) -> None:
    lean = [answer async for answer in _answers(databases[0], redis_url, lean=True)]
    full = [answer async for answer in _answers(databases[1], redis_url, lean=False)]
    statuses = [status for status, _, _ in lean]
    orders = [201, 200, 409, 201, 422, 422, 422, 422, 422, 403, 401, 422]
    ticks = [200, 422, 422, 422, 403, 422]
    signals = [201, 201, 422, 200, 422, 422, 422, 201, 422, 422, 403, 401, 422]
    assert statuses == [*orders, *ticks, *signals]
    for (what, _, _, _), mine, reference in zip(REQUESTS, lean, full, strict=True):
        assert mine == reference, what


async def test_valid_requests_are_answered_by_the_lean_routes_and_the_rest_handed_over(
    databases: list[str], redis_url: str
) -> None:
    settings = make_settings(databases[0], redis_url, f"t{uuid.uuid4().hex[:10]}:")
    app = create_app(settings, clock=ManualClock())
    handed: list[str] = []

    async def full_app(scope: Any, receive: Any, send: Any) -> None:
        """Stands for the full app behind the lean routes: notes what reached it."""
        handed.append(scope["path"])
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with app.router.lifespan_context(app):
        lean = LeanRoutes(full_app, state=app.state, registry=app.state.metrics)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=lean), base_url="http://t") as client:
            ticks = {"ticks": [tick("BTC-USD", "100.00", "100.10", ts=NOW)]}
            answers = [
                await client.post("/v1/ticks", json=ticks, headers=AGENT),
                await client.post("/v1/orders", json=order("l1", quantity="0.1"), headers=AGENT),
                await client.post("/v1/signals", json=signal(), headers=AGENT),
            ]
            assert [a.status_code for a in answers] == [200, 201, 201], [a.text for a in answers]
            assert handed == []
            refused = [
                await client.post("/v1/signals", json=signal(strength="2"), headers=AGENT),
                await client.post("/v1/ticks", json={"ticks": []}, headers=AGENT),
                await client.post("/v1/orders", json=order("l2"), headers=READ),
                await client.get("/v1/portfolio", headers=READ),
            ]
            assert [a.status_code for a in refused] == [599] * 4
            assert handed == ["/v1/signals", "/v1/ticks", "/v1/orders", "/v1/portfolio"]
