"""The OpenAPI document says what the API answers (``trader_api/contract.py``); the
schemathesis run over the whole document is in ``test_uvicorn.py``."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from sapphire.trader_api.app import create_app
from sapphire.trader_api.schemas.market import TickBatch
from sapphire.trader_api.schemas.orders import OrderCreate
from tests.trader_api import schemathesis_hooks, support
from tests.trader_api.support import ADMIN, AGENT, READ, ManualClock, order, tick
from tests.trader_api.wire_bodies import encode, order_bodies, reference, tick_bodies


def _responses(app: FastAPI, method: str, path: str) -> dict[str, Any]:
    responses: dict[str, Any] = app.openapi()["paths"][path][method.lower()]["responses"]
    return responses


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/orders", "GET, POST"),  # two routes on one path: both named
        ("OPTIONS", "/v1/orders", "GET, POST"),
        ("PATCH", "/v1/risk/state", "PUT"),
        ("DELETE", "/v1/orders/0f3c7c4e-7d7c-4f7e-9a53-1f8c2b1e0a11", "GET"),
        ("PUT", "/openapi.json", "GET, HEAD"),
    ],
)
async def test_a_method_the_path_does_not_serve_gets_405_allowing_every_method_it_serves(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path, headers=ADMIN)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json() == {"detail": "Method Not Allowed"}


async def test_the_token_answers_are_documented_as_the_route_s_scope_gives_them(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    read_route, admin_route = _responses(app, "GET", "/v1/risk"), _responses(app, "PUT", "/v1/risk/state")
    assert "401" in read_route
    assert "403" not in read_route
    assert {"401", "403"} <= set(admin_route)
    assert read_route["401"]["headers"]["WWW-Authenticate"]["required"] is True
    denied = await client.put("/v1/risk/state", json={"state": "HALTED", "reason": "x"}, headers=READ)
    assert denied.status_code == 403
    assert set(denied.json()) == {"detail"}
    unknown = await client.get("/v1/risk", headers={"Authorization": "Bearer nobody"})
    assert unknown.status_code == 401
    assert "www-authenticate" in unknown.headers


def test_503_is_documented_where_the_route_reaches_the_database_or_the_bus(app: FastAPI) -> None:
    assert "503" in _responses(app, "GET", "/v1/orders")
    assert _responses(app, "POST", "/v1/orders")["503"]["headers"]["Retry-After"]["required"] is True
    # The backtests are files: no database, no bus, so no 503.
    assert "503" not in _responses(app, "GET", "/v1/backtests")
    assert "503" not in _responses(app, "GET", "/healthz")


def test_a_risk_refusal_is_documented_with_its_rule(app: FastAPI) -> None:
    schema = _responses(app, "POST", "/v1/orders")["422"]["content"]["application/json"]["schema"]
    assert [choice["$ref"].rsplit("/", 1)[1] for choice in schema["anyOf"]] == [
        "InvalidRequest",
        "RiskRefusal",
    ]
    assert "anyOf" not in _responses(app, "GET", "/v1/orders")["422"]["content"]["application/json"]["schema"]


async def test_the_schemathesis_hook_tells_a_rule_no_schema_states_from_a_field_s_own_value(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """The API's own answers: the refusals a schema-valid request may get (a crossed book, an
    instrument not listed, a risk rule: no quote yet), and one it must not (a bad value)."""
    crossed = await client.post(
        "/v1/ticks", json={"ticks": [tick("BTC-USD", "101", "100", ts=clock.now)]}, headers=AGENT
    )
    unlisted = await client.post("/v1/orders", json=order("h-1", "NOPE-USD", limit_price="1"), headers=AGENT)
    no_quote = await client.post("/v1/orders", json=order("h-2", limit_price="100"), headers=AGENT)
    bad_value = await client.post("/v1/orders", json=order("h-3", quantity="1e3"), headers=AGENT)
    assert [r.status_code for r in (crossed, unlisted, no_quote, bad_value)] == [422] * 4
    assert no_quote.json()["rule"] == "stale_quote"
    for allowed in (crossed, unlisted, no_quote):
        assert schemathesis_hooks.refused_by_rules_no_schema_can_state(allowed.json()), allowed.json()
    assert not schemathesis_hooks.refused_by_rules_no_schema_can_state(bad_value.json())


_DOCUMENT = create_app(
    support.make_settings("postgresql+psycopg://unused/unused", "redis://unused:1", "p:")
).openapi()
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _json(text: bytes) -> Any:
    """The body as JSON (a body that is not JSON is no question for the schema)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        reject()


def _admits(model: str, value: Any) -> bool:
    """Whether the document's schema of ``model`` admits ``value``, with Rust's regex engine
    (schemathesis' own validator): ``$`` there ends the text, as in ECMA 262, where Python's
    ``re`` lets a final newline through."""
    schema = {"$ref": f"#/components/schemas/{model}", "components": _DOCUMENT["components"]}
    return bool(jsonschema_rs.Draft202012Validator(schema).is_valid(value))


@PROPERTY
@given(order_bodies())
def test_the_document_admits_exactly_the_orders_the_model_takes(body: dict[str, Any]) -> None:
    """Patterns of decimals and timestamps, and which prices each order type needs: the
    schema and the model agree on every body, valid or not."""
    text = encode(body)
    taken = isinstance(reference(OrderCreate, text, "application/json"), BaseModel)
    assert _admits("OrderCreate", _json(text)) is taken, body


@PROPERTY
@given(st.lists(tick_bodies(), min_size=1, max_size=3).map(lambda ticks: {"ticks": ticks}))
def test_the_document_admits_the_ticks_the_model_takes_and_more_only_for_a_crossed_book(
    batch: dict[str, Any],
) -> None:
    """A crossed book (bid above ask) is the one rule JSON Schema cannot state: it compares
    two fields."""
    text = encode(batch)
    outcome = reference(TickBatch, text, "application/json")
    admitted = _admits("TickBatch", _json(text))
    if isinstance(outcome, BaseModel):
        assert admitted, batch
    elif admitted:
        assert isinstance(outcome, list), batch
        assert {problem["msg"].split(":")[0] for problem in outcome} == {"Value error, ask"}, outcome
