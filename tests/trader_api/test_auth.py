"""Bearer tokens and scopes: 401 without a valid token, 403 with too small a scope, and
no route open because a token setting is empty."""

from __future__ import annotations

import httpx
import pydantic
import pytest

from sapphire.trader_api.settings import TraderApiSettings
from tests.trader_api.support import ADMIN, AGENT, READ, bearer, make_settings, running_client

PROTECTED = [
    ("GET", "/v1/instruments", "read"),
    ("GET", "/v1/quotes/BTC-USD", "read"),
    ("GET", "/v1/bars/BTC-USD", "read"),
    ("GET", "/v1/orders", "read"),
    ("GET", "/v1/fills", "read"),
    ("GET", "/v1/portfolio", "read"),
    ("GET", "/v1/risk", "read"),
    ("GET", "/v1/signals", "read"),
    ("GET", "/v1/agents", "read"),
    ("GET", "/v1/agents/a/stats", "read"),
    ("GET", "/v1/headlines", "read"),
    ("GET", "/v1/events", "read"),
    ("POST", "/v1/ticks", "agent"),
    ("POST", "/v1/orders", "agent"),
    ("POST", "/v1/orders/00000000-0000-0000-0000-000000000000/cancel", "agent"),
    ("POST", "/v1/signals", "agent"),
    ("POST", "/v1/agents/a/heartbeat", "agent"),
    ("POST", "/v1/headlines", "agent"),
    ("PUT", "/v1/risk/state", "admin"),
    ("PUT", "/v1/risk/limits", "admin"),
]


@pytest.mark.parametrize(("method", "path", "scope"), PROTECTED)
async def test_every_route_but_the_probes_needs_a_token(
    client: httpx.AsyncClient, method: str, path: str, scope: str
) -> None:
    for headers in ({}, bearer("wrong-token"), {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = await client.request(method, path, headers=headers)
        assert response.status_code == 401, (path, headers)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["detail"]


@pytest.mark.parametrize(("method", "path", "scope"), [p for p in PROTECTED if p[2] != "read"])
async def test_a_smaller_scope_is_forbidden(
    client: httpx.AsyncClient, method: str, path: str, scope: str
) -> None:
    too_small = [READ] if scope == "agent" else [READ, AGENT]
    for headers in too_small:
        response = await client.request(method, path, headers=headers, json={})
        assert response.status_code == 403, (path, headers)
        assert f"needs scope {scope}" in response.json()["detail"]


async def test_probes_metrics_and_docs_are_open(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert (await client.get(path)).status_code == 200, path


async def test_an_empty_token_setting_matches_nothing(
    trader_database_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = make_settings(trader_database_url, redis_url, redis_prefix, dev_mode=True, admin_token="")
    async with running_client(settings) as client:
        for headers in ({"Authorization": "Bearer "}, bearer(""), {}):
            response = await client.put(
                "/v1/risk/state", json={"state": "HALTED", "reason": "x"}, headers=headers
            )
            assert response.status_code == 401
        assert (await client.put("/v1/risk/limits", json={}, headers=AGENT)).status_code == 403


def test_placeholder_tokens_refuse_to_start_outside_dev_mode() -> None:
    with pytest.raises(pydantic.ValidationError, match="admin_token: a real secret is required"):
        TraderApiSettings(read_token="r" * 20, agent_token="a" * 20, admin_token="changeme")


async def test_admin_reaches_every_scope(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/portfolio", headers=ADMIN)).status_code == 200
    assert (
        await client.post("/v1/agents/a/heartbeat", json={"role": "momentum"}, headers=ADMIN)
    ).status_code == 200
