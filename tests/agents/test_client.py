"""The agents' trader API client on its own, against a real server on a local socket (uvicorn
serving a small Starlette app that answers as the test needs and reports what it saw): its
errors, its one kept-alive connection, its token, its JSON both ways."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sapphire.agents import client
from tests.support.trader_api import ServedApp, serving

TOKEN = "client-test-token-0123456789"
REJECTION = {"detail": [{"loc": ["body", "quantity"], "msg": "must be positive"}]}
RELEASE = asyncio.Event()
"""Lets the route that never answers on its own finish, so the server can stop."""


async def seen(request: Request) -> Response:
    """What the server saw of the call: the client's port (one per TCP connection) and token."""
    assert request.client is not None
    return JSONResponse({"peer_port": request.client.port, "authorization": request.headers["authorization"]})


async def echo(request: Request) -> Response:
    """The body as ``json.loads`` reads it, and its content type."""
    body = json.loads(await request.body())
    return JSONResponse({"body": body, "content_type": request.headers["content-type"]}, status_code=201)


async def rejected(_: Request) -> Response:
    return JSONResponse(REJECTION, status_code=422)


async def failing(_: Request) -> Response:
    return Response("database unavailable", status_code=503)


async def silent(_: Request) -> Response:
    await RELEASE.wait()
    return Response(status_code=204)


async def instruments(_: Request) -> Response:
    return JSONResponse([{"symbol": "BTC-USD", "tick_size": "0.01", "lot_size": 0.0001}])


APP = Starlette(
    routes=[
        Route("/v1/risk", seen),
        Route("/v1/orders", echo, methods=["POST"]),
        Route("/v1/signals", rejected, methods=["GET"]),
        Route("/v1/headlines", failing, methods=["POST"]),
        Route("/v1/agents/{name}/heartbeat", silent, methods=["POST"]),
        Route("/v1/instruments", instruments),
    ]
)


@pytest.fixture
async def server() -> AsyncIterator[ServedApp]:
    RELEASE.clear()
    async with serving(APP) as served:
        yield served
        RELEASE.set()


@pytest.fixture
async def api(server: ServedApp) -> AsyncIterator[client.TraderApiClient]:
    api = client.TraderApiClient(server.url, token=TOKEN, timeout_seconds=0.5)
    yield api
    await api.aclose()


async def test_calls_take_turns_on_one_kept_alive_connection(
    server: ServedApp, api: client.TraderApiClient
) -> None:
    other = client.TraderApiClient(server.url, token=TOKEN)
    try:
        first = await api.risk()
        # Precondition: the port the server sees tells connections apart.
        assert (await other.risk())["peer_port"] != first["peer_port"]
    finally:
        await other.aclose()
    later = [await api.risk() for _ in range(3)]
    concurrent = await asyncio.gather(*(api.risk() for _ in range(3)))
    assert {call["peer_port"] for call in [*later, *concurrent]} == {first["peer_port"]}


async def test_the_bearer_token_arrives(api: client.TraderApiClient) -> None:
    assert (await api.risk())["authorization"] == f"Bearer {TOKEN}"


async def test_bodies_are_json_both_ways(api: client.TraderApiClient) -> None:
    body = {"client_order_id": "c-1", "quantity": "0.5", "horizon": 600, "attached": {"stop_bps": "150"}}
    assert await api.post_order(body) == {"body": body, "content_type": "application/json"}
    [instrument] = await api.instruments()
    assert (instrument.tick_size, instrument.lot_size) == (Decimal("0.01"), Decimal("0.0001"))


async def test_a_4xx_is_rejected_with_its_status_and_detail(api: client.TraderApiClient) -> None:
    with pytest.raises(client.ApiRejectedError) as raised:
        await api.signals(agent="mom-1")
    assert raised.value.status == 422
    assert json.loads(raised.value.detail) == REJECTION


async def test_a_5xx_is_unavailable(api: client.TraderApiClient) -> None:
    with pytest.raises(client.ApiUnavailableError, match=r"POST /v1/headlines: HTTP 503") as raised:
        await api.post_headline(text="t", source="wire", ts=datetime.now(UTC))
    assert TOKEN not in str(raised.value)


async def test_an_answer_that_does_not_come_is_unavailable(api: client.TraderApiClient) -> None:
    """The client's read timeout (0.5 s here) ends the call; the route itself never answers."""
    with pytest.raises(client.ApiUnavailableError, match=r"POST /v1/agents/mom-1/heartbeat: .*Timeout"):
        await api.heartbeat("mom-1", role="momentum", symbols=["BTC-USD"])


async def test_a_server_that_is_not_listening_is_unavailable() -> None:
    absent = ServedApp()  # a free port nothing serves
    api = client.TraderApiClient(absent.url, token=TOKEN)
    try:
        with pytest.raises(client.ApiUnavailableError, match=r"GET /v1/risk: ClientConnectorError") as raised:
            await api.risk()
    finally:
        await api.aclose()
    assert TOKEN not in str(raised.value)
