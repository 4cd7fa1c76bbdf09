"""Operations: Prometheus metrics, readiness, and the ``sapphire api`` command."""

from __future__ import annotations

import httpx
import pydantic
import pytest
from typer.testing import CliRunner

from sapphire import cli
from sapphire.trader_api.settings import TraderApiSettings
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


def test_settings_read_instruments_and_limits_as_json_and_show_them_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "SAPPHIRE_INSTRUMENTS", '[{"symbol": "SOL-USD", "tick_size": "0.001", "lot_size": "0.1"}]'
    )
    monkeypatch.setenv("SAPPHIRE_RISK", '{"max_order_notional": "2500.50"}')
    monkeypatch.setenv("SAPPHIRE_ADMIN_TOKEN", "a-real-admin-token")
    monkeypatch.setenv("SAPPHIRE_DEV_MODE", "true")
    shown = TraderApiSettings().redacted()
    assert shown["instruments"] == [
        {"symbol": "SOL-USD", "tick_size": "0.001", "lot_size": "0.1", "quote_currency": "USD"}
    ]
    assert shown["risk"]["max_order_notional"] == "2500.50"
    assert shown["admin_token"] == "***"


def test_duplicate_instruments_are_refused_naming_the_field() -> None:
    with pytest.raises(pydantic.ValidationError, match="instruments: duplicate symbols AAPL"):
        TraderApiSettings(
            dev_mode=True,
            instruments=[
                {"symbol": "AAPL", "tick_size": "0.01", "lot_size": "1"},
                {"symbol": "AAPL", "tick_size": "0.01", "lot_size": "1"},
            ],
        )
