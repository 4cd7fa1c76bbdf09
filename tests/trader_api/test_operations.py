"""Operations: Prometheus metrics, readiness, and the ``sapphire api`` command."""

from __future__ import annotations

import httpx
from typer.testing import CliRunner

from sapphire import cli
from tests.trader_api.support import AGENT, ManualClock, order, send_ticks, tick


async def test_metrics_count_orders_refusals_fills_and_requests(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await send_ticks(client, tick("BTC-USD", "100.00", "100.10", ts=clock.now))
    await client.post("/v1/orders", json=order("m1"), headers=AGENT)
    await client.post("/v1/orders", json=order("m2", quantity="100000"), headers=AGENT)
    text = (await client.get("/metrics")).text
    assert 'sapphire_orders_total{outcome="filled"} 1.0' in text
    assert 'sapphire_risk_refusals_total{rule="max_order_notional"} 1.0' in text
    assert 'sapphire_fills_total{liquidity="taker",symbol="BTC-USD"} 1.0' in text
    assert 'sapphire_ticks_ingested_total{symbol="BTC-USD"} 1.0' in text
    assert 'sapphire_risk_state{state="ACTIVE"} 1.0' in text
    assert 'sapphire_http_requests_total{method="POST",route="/v1/orders",status="201"} 1.0' in text
    await client.get("/v1/orders/00000000-0000-0000-0000-000000000000", headers=AGENT)
    text = (await client.get("/metrics")).text
    assert 'route="/v1/orders/{order_id}",status="404"} 1.0' in text
    assert 'sapphire_http_requests_total{method="GET",route="/metrics",status="200"} 1.0' in text


async def test_readiness_reports_an_unmigrated_database(
    database_url: str, redis_url: str, redis_prefix: str
) -> None:
    from tests.trader_api.support import make_settings, running_client

    settings = make_settings(
        database_url.replace("postgresql://", "postgresql+psycopg://"), redis_url, redis_prefix
    )
    async with running_client(settings) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["database"].startswith("error")
        assert ready.json()["bus"] == "ok"
        assert (await client.get("/healthz")).status_code == 200


def test_the_api_command_is_registered() -> None:
    result = CliRunner().invoke(cli.app, ["api", "--help"])
    assert result.exit_code == 0
    assert "trader API" in result.output
