"""The trader API as it runs in production: ``sapphire api`` (uvicorn) in its own process,
on real Postgres and Redis. Also the schemathesis run over the OpenAPI document, which must
find the API doing nothing else than the document says."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import processes, services, trader_api
from tests.trader_api import support

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture(scope="module")
def api_url(
    postgres_server: services.PostgresServer, migrated_template: str, redis_server: services.RedisServer
) -> Iterator[str]:
    """``sapphire api`` serving a migrated database of this module's own."""
    database = postgres_server.create_database(template=migrated_template)
    try:
        with trader_api.running_trader_api(
            database_url=database,
            redis_url=redis_server.fresh_database(),
            redis_key_prefix=f"uvicorn{processes.free_port()}:",
            read_token=support.READ_TOKEN,
            agent_token=support.AGENT_TOKEN,
            admin_token=support.ADMIN_TOKEN,
            events_heartbeat_seconds="0.5",
        ) as api:
            yield api.url
    finally:
        postgres_server.drop_database(database)


def test_probes_and_metrics_over_real_http(api_url: str) -> None:
    assert httpx.get(f"{api_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{api_url}/readyz").json()
    assert ready == {
        "status": "ready",
        "database": "ok",
        "bus": "ok",
        "engine": {"role": "writer", "writer": ready["engine"]["writer"], "epoch": 1},
    }
    assert ready["engine"]["writer"].startswith("http://127.0.0.1:")
    metrics = httpx.get(f"{api_url}/metrics").text
    assert "sapphire_http_requests_total" in metrics
    assert 'route="/readyz"' in metrics


def test_an_order_round_trip_over_real_http(api_url: str) -> None:
    now = datetime.now(UTC)
    with httpx.Client(base_url=api_url, timeout=10) as client:
        ticks = {"ticks": [support.tick("ETH-USD", "3000.00", "3000.50", ts=now)]}
        assert client.post("/v1/ticks", json=ticks, headers=support.AGENT).status_code == 200
        placed = client.post(
            "/v1/orders", json=support.order("http-1", "ETH-USD", quantity="0.5"), headers=support.AGENT
        )
        assert placed.status_code == 201, placed.text
        assert placed.json()["status"] == "filled"
        again = client.post(
            "/v1/orders", json=support.order("http-1", "ETH-USD", quantity="0.5"), headers=support.AGENT
        )
        assert (again.status_code, again.json()["id"]) == (200, placed.json()["id"])
        positions = client.get("/v1/portfolio", headers=support.READ).json()["positions"]
        assert [(p["symbol"], p["quantity"]) for p in positions] == [("ETH-USD", "0.5")]


async def next_event(lines: AsyncIterator[str]) -> dict[str, Any]:
    """The next SSE frame's ``event`` and decoded ``data``."""
    event: dict[str, Any] = {}
    async for line in lines:
        if line.startswith("event: "):
            event["type"] = line.removeprefix("event: ")
        elif line.startswith("data: "):
            event["data"] = json.loads(line.removeprefix("data: "))
            return event
    raise AssertionError("the stream ended")


async def test_server_sent_events_stream_signals_and_orders(api_url: str) -> None:
    signal = {
        "agent": "sse-1",
        "role": "momentum",
        "symbol": "BTC-USD",
        "direction": "short",
        "strength": "-0.4",
        "confidence": "0.9",
        "horizon_seconds": 30,
    }
    async with (
        httpx.AsyncClient(base_url=api_url, timeout=10) as client,
        client.stream("GET", "/v1/events", params={"types": "signal"}, headers=support.READ) as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert await anext(lines) == ": subscribed"
        posted = (await client.post("/v1/signals", json=signal, headers=support.AGENT)).json()
        event = await next_event(lines)
    assert event == {"type": "signal", "data": posted}


async def test_a_tick_stream_carries_its_symbols_newest_tick_of_each_batch(api_url: str) -> None:
    now = datetime.now(UTC)
    async with (
        httpx.AsyncClient(base_url=api_url, timeout=10) as client,
        client.stream(
            "GET", "/v1/events", params={"types": "tick", "symbol": "BTC-USD"}, headers=support.READ
        ) as stream,
    ):
        lines = stream.aiter_lines()
        assert await anext(lines) == ": subscribed"

        async def send(*ticks: dict[str, str]) -> None:
            response = await client.post("/v1/ticks", json={"ticks": list(ticks)}, headers=support.AGENT)
            assert response.status_code == 200, response.text

        await send(
            support.tick("ETH-USD", "3000.00", "3000.50", ts=now),
            support.tick("BTC-USD", "60000.00", "60000.10", ts=now),
            support.tick("BTC-USD", "60001.00", "60001.10", ts=now + timedelta(milliseconds=1)),
        )
        first = await next_event(lines)
        # Publications go out in commit order: had ETH-USD's tick been streamed, it would come
        # before the third batch's BTC-USD tick.
        await send(support.tick("ETH-USD", "3001.00", "3001.50", ts=now + timedelta(seconds=1)))
        await send(support.tick("BTC-USD", "60002.00", "60002.10", ts=now + timedelta(seconds=1)))
        second = await next_event(lines)
    assert first["type"] == "tick"
    assert (first["data"]["symbol"], first["data"]["bid"], first["data"]["last"]) == (
        "BTC-USD",
        "60001.00",
        "60001.00",
    )
    assert datetime.fromisoformat(first["data"]["ts"]) == now + timedelta(milliseconds=1)
    assert (second["type"], second["data"]["symbol"], second["data"]["bid"]) == (
        "tick",
        "BTC-USD",
        "60002.00",
    )


SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")
REPOSITORY = Path(__file__).resolve().parents[2]


def test_the_openapi_document_says_what_the_api_does(api_url: str, tmp_path: Path) -> None:
    """schemathesis (its command line, as a user runs it) with every check on, over every
    operation of ``/openapi.json``, in every phase (examples, coverage, fuzzing, stateful),
    with an admin token: not one failure. The seed, the example count and the one rule the
    project words itself (a schema-valid request refused only by a rule no schema can state)
    are in ``schemathesis.toml``."""
    report = tmp_path / "schemathesis.json"
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(SCHEMATHESIS_CONFIG), "run"),
        *(f"{api_url}/openapi.json", "--checks", "all", "--no-color"),
        *("--header", f"Authorization: Bearer {support.ADMIN_TOKEN}"),
        *("--report", "json", "--report-json-path", str(report)),
    ]
    run = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=600, check=False)
    assert report.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    outcome = json.loads(report.read_text())
    summary = {
        "schemathesis": outcome["schemathesis_version"],
        "seed": outcome["seed"],
        "operations": outcome["operations"],
        "test_cases": outcome["test_cases"],
        "phases": {name: phase["status"] for name, phase in outcome["phases"].items()},
        "failures": {failure["code"]: failure["count"] for failure in outcome["failures"]},
    }
    if ARTIFACTS.exists():
        (ARTIFACTS / "schemathesis-summary.json").write_text(json.dumps(summary, indent=2))
    print(f"schemathesis summary: {summary}")
    assert outcome["failures"] == [], run.stdout[-20000:]
    assert outcome["errors"] == [], run.stdout[-20000:]
    assert run.returncode == 0, run.stdout[-20000:]
    assert outcome["complete"]
    assert outcome["operations"]["tested"] == outcome["operations"]["total"] >= 28
    assert set(summary["phases"].values()) == {"success"}
