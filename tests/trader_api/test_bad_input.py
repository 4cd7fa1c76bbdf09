"""A corpus of malformed requests: each gets a 4xx whose message names the field, and
nothing at all is persisted."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.trader_api.support import AGENT, READ, ManualClock, order, send_ticks, tick

GOOD_SIGNAL = {
    "agent": "mom-1",
    "role": "momentum",
    "symbol": "BTC-USD",
    "direction": "long",
    "strength": "0.5",
    "confidence": "0.5",
    "horizon_seconds": 60,
    "rationale": "",
}
TS = "2026-03-02T14:30:00+00:00"
_ts = datetime.fromisoformat(TS)


def changed(base: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = dict(base)
    for name, value in fields.items():
        if value is ...:
            body.pop(name, None)
        else:
            body[name] = value
    return body


GOOD_ORDER = order("bad-1", limit_price="100.00")
CORPUS: list[tuple[str, str, Any, str]] = [
    # (method, path, JSON body or raw bytes, text the message must contain)
    ("POST", "/v1/orders", b"{not json", "json"),
    ("POST", "/v1/orders", [], "body"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, client_order_id=...), "client_order_id"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, client_order_id=""), "client_order_id"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, client_order_id="x" * 65), "client_order_id"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, symbol="btc-usd"), "symbol"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, symbol="NOPE-USD"), "symbol"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, side="long"), "side"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, type="stop"), "type"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, quantity="-1"), "quantity"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, quantity="0"), "quantity"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, quantity="NaN"), "quantity"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, quantity="Infinity"), "quantity"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, quantity="1e999999"), "quantity"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, quantity="one"), "quantity"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, quantity="0.00001"), "quantity"),  # below the lot
    ("POST", "/v1/orders", changed(GOOD_ORDER, limit_price="100.001"), "limit_price"),  # off the tick
    ("POST", "/v1/orders", changed(GOOD_ORDER, limit_price=...), "limit_price"),
    ("POST", "/v1/orders", changed(order("bad-2"), limit_price="100.00", type="market"), "limit_price"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, time_in_force="fok"), "time_in_force"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, agent="bad agent!"), "agent"),
    ("POST", "/v1/orders", changed(GOOD_ORDER, surprise=1), "surprise"),
    ("POST", "/v1/ticks", {"ticks": []}, "ticks"),
    ("POST", "/v1/ticks", {"ticks": [tick("BTC-USD", "100", "99", ts=_ts)]}, "ask"),
    ("POST", "/v1/ticks", {"ticks": [changed(tick("BTC-USD", "1", "2", ts=_ts), ts="yesterday")]}, "ts"),
    (
        "POST",
        "/v1/ticks",
        {"ticks": [changed(tick("BTC-USD", "1", "2", ts=_ts), ts="2026-03-02T14:30:00")]},
        "ts",
    ),
    (
        "POST",
        "/v1/ticks",
        {"ticks": [changed(tick("BTC-USD", "1", "2", ts=_ts), ts="0001-01-01T00:00:00+05:00")]},
        "ts",
    ),
    ("POST", "/v1/ticks", {"ticks": [changed(tick("BTC-USD", "1", "2", ts=_ts), bid="-1")]}, "bid"),
    ("POST", "/v1/ticks", {"ticks": [tick("BTC-USD", "1", "2", ts=_ts.replace(year=2099))]}, "in the future"),
    ("POST", "/v1/signals", changed(GOOD_SIGNAL, strength="1.5"), "strength"),
    ("POST", "/v1/signals", changed(GOOD_SIGNAL, confidence="-0.1"), "confidence"),
    ("POST", "/v1/signals", changed(GOOD_SIGNAL, direction="up"), "direction"),
    ("POST", "/v1/signals", changed(GOOD_SIGNAL, horizon_seconds=0), "horizon_seconds"),
    ("POST", "/v1/signals", changed(GOOD_SIGNAL, horizon_seconds=10**20), "horizon_seconds"),
    ("POST", "/v1/signals", changed(GOOD_SIGNAL, rationale="nul\x00byte"), "rationale"),
    ("POST", "/v1/signals", changed(GOOD_SIGNAL, agent=...), "agent"),
    ("POST", "/v1/agents/mom-1/heartbeat", {"role": "Momentum!"}, "role"),
    ("POST", "/v1/agents/mom-1/heartbeat", {"role": "momentum", "symbols": ["bad symbol"]}, "symbols"),
    ("POST", "/v1/agents/bad%20name/heartbeat", {"role": "momentum"}, "name"),
    ("POST", "/v1/headlines", {"text": "", "source": "wire", "ts": TS}, "text"),
    ("POST", "/v1/headlines", {"text": "x", "source": "wire", "ts": "not a time"}, "ts"),
    ("GET", "/v1/quotes/not-a-symbol", None, "symbol"),
    ("GET", "/v1/bars/BTC-USD?interval=5m", None, "interval"),
    ("GET", "/v1/bars/BTC-USD?limit=0", None, "limit"),
    ("GET", "/v1/orders/not-a-uuid", None, "order_id"),
    ("GET", "/v1/orders?status=open", None, "status"),
    ("GET", "/v1/signals?since=2026-13-45", None, "since"),
    ("GET", "/v1/signals?limit=100000", None, "limit"),
    ("GET", "/v1/events?types=ticks", None, "types"),
    ("GET", "/v1/events?types=tick", None, "symbol"),
    ("GET", "/v1/events?types=tick&symbol=btc", None, "symbol"),
]


@pytest.fixture
async def market(client: httpx.AsyncClient, clock: ManualClock) -> httpx.AsyncClient:
    await send_ticks(client, tick("BTC-USD", "100.00", "100.10", ts=clock.now))
    return client


def table_counts(database_url: str) -> dict[str, int]:
    tables = ("orders", "fills", "signals", "agents", "headlines", "bars", "positions")
    with psycopg.connect(database_url.replace("+psycopg", "")) as connection:
        counts = {name: connection.execute(f"SELECT count(*) FROM {name}").fetchone() for name in tables}
        account = connection.execute("SELECT cash, risk_state, risk_limits::text FROM accounts").fetchone()
    return {name: int(row[0]) if row else -1 for name, row in counts.items()} | {"account": hash(account)}


async def test_every_malformed_request_gets_a_4xx_naming_the_field_and_writes_nothing(
    market: httpx.AsyncClient, trader_database_url: str
) -> None:
    before = table_counts(trader_database_url)
    failures = []
    for method, path, body, field in CORPUS:
        headers = AGENT if method == "POST" else READ
        if isinstance(body, bytes):
            response = await market.request(
                method, path, content=body, headers={**headers, "Content-Type": "application/json"}
            )
        else:
            response = await market.request(method, path, json=body, headers=headers)
        text = response.text
        if not (400 <= response.status_code < 500) or field not in text:
            failures.append((method, path, body, response.status_code, text[:300]))
    assert failures == []
    assert table_counts(trader_database_url) == before


async def test_a_tick_stream_without_its_symbol_is_refused_naming_query_symbol(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/events", params={"types": "signal,tick"}, headers=READ)
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["query", "symbol"]


async def test_a_tick_batch_with_several_problems_is_refused_naming_the_first(
    market: httpx.AsyncClient, clock: ManualClock, trader_database_url: str
) -> None:
    """The batch is checked in C loops and walked tick by tick only once it fails: the 422
    names the first offender in the batch's order, whichever check it fails."""
    before = table_counts(trader_database_url)
    good = tick("BTC-USD", "1", "2", ts=clock.now)
    future = tick("BTC-USD", "1", "2", ts=clock.now + timedelta(hours=1))
    unknown = tick("NOPE-USD", "1", "2", ts=clock.now)
    for ticks, loc in [
        ([good, future, unknown], ["body", "ticks", 1, "ts"]),
        ([good, unknown, future], ["body", "ticks", 1, "symbol"]),
        ([good, good, future], ["body", "ticks", 2, "ts"]),
    ]:
        response = await market.post("/v1/ticks", json={"ticks": ticks}, headers=AGENT)
        assert response.status_code == 422, response.text
        assert [problem["loc"] for problem in response.json()["detail"]] == [loc]
    assert table_counts(trader_database_url) == before
