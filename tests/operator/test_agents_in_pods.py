"""The real agents in pods: a momentum analyst and the executor, declared as TradingAgents,
run ``sapphire agent run`` through the process node against the real trader API, Postgres and
Redis, and trade. The operator also shows their trading figures in status."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sapphire.migrations import config as migration_config
from tests.operator.conftest import AGENT_TOKEN_SECRET
from tests.support import kube, processes, services, trader_api
from tests.support import operator as operator_support

pytestmark = pytest.mark.k8s

StartOperator = Callable[..., operator_support.OperatorProcess]
Json = dict[str, Any]


def trading_agent(name: str, role: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "trading.sapphire-ai.com/v1alpha1",
        "kind": "TradingAgent",
        "metadata": {"name": name},
        "spec": {"role": role, "symbols": ["BTC-USD"], "intervalSeconds": 5, **spec},
    }


@pytest.mark.timeout(240)
def test_a_momentum_agent_and_the_executor_trade_from_pods(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    database_url: str,
    own_redis_server: services.RedisServer,
) -> None:
    migration_config.upgrade(database_url)
    with (
        trader_api.running_trader_api(
            database_url=database_url,
            redis_url=own_redis_server.url,
            instruments=json.dumps([{"symbol": "BTC-USD", "tick_size": "0.01", "lot_size": "0.0001"}]),
        ) as api,
        trader_api.running_market_feed(api.url, feed_interval_seconds="0.05"),
    ):
        control_plane.kubectl(
            "create", "secret", "generic", AGENT_TOKEN_SECRET,
            f"--from-literal=token={trader_api.AGENT_TOKEN}", "-n", namespace,
        )  # fmt: skip
        start_operator(
            SAPPHIRE_TRADER_API_URL=api.url,
            SAPPHIRE_AGENT_REDIS_URL=own_redis_server.url,
            SAPPHIRE_TRADER_API_TOKEN=trader_api.READ_TOKEN,
            SAPPHIRE_STATUS_REFRESH_SECONDS="2",
        )
        risk = {
            "maxOrderNotional": "5000",
            "maxPositionNotional": "20000",
            "maxGrossExposure": "50000",
            "maxDailyLoss": "10000",
        }
        kube.apply(control_plane, trading_agent("momo", "momentum"), namespace)
        kube.apply(control_plane, trading_agent("grok", "executor", risk=risk), namespace)
        with api.client() as client:

            def traded(_: Any = None) -> bool:
                # A resting order may fill a few ticks later: wait for the fill itself.
                momentum = client.get("/v1/signals", params={"agent": "momo"}).json()
                fills = client.get("/v1/fills").json()
                return bool(momentum) and any(f.get("agent") == "grok" for f in fills)

            kube.wait_for(
                control_plane, "/version", traded, timeout=180, what="signals and orders from the pods"
            )
            portfolio = client.get("/v1/portfolio").json()
            fills = client.get("/v1/fills").json()
            signals = client.get("/v1/signals", params={"limit": 1000}).json()
            orders = client.get("/v1/orders").json()
        roles: dict[str, int] = {}
        for signal in signals:
            roles[signal["role"]] = roles.get(signal["role"], 0) + 1
        print(  # the run's summary, for `pytest -s`
            f"signals per role: {roles}; orders: {len(orders)}; fills: {len(fills)}; "
            f"equity {portfolio['equity']}, realized {portfolio['realized_pnl']}, "
            f"unrealized {portfolio['unrealized_pnl']}"
        )
        assert fills, "the executor's orders were filled by the paper venue"
        assert portfolio["positions"], portfolio
        path = f"/apis/trading.sapphire-ai.com/v1alpha1/namespaces/{namespace}/tradingagents/momo"
        body = kube.wait_for(
            control_plane,
            path,
            # The figures converge on the operator's next refresh (every 2 s here).
            lambda b: (
                b.get("status", {}).get("lastSignalAt") is not None
                and b["status"].get("signalsLastHour", 0) >= 1
            ),
            timeout=60,
        )
        assert body["status"]["phase"] == "Running"
        assert body["status"]["signalsLastHour"] >= 1


@pytest.mark.timeout(240)
def test_an_agent_whose_loops_die_is_restarted_shown_degraded_with_why_and_recovers(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    database_url: str,
    own_redis_server: services.RedisServer,
) -> None:
    migration_config.upgrade(database_url)
    # The trader API the agent is pointed at is not up yet: its loops fail from the start.
    api = trader_api.TraderApiProcess(
        database_url=database_url,
        redis_url=own_redis_server.url,
        settings={
            "instruments": json.dumps([{"symbol": "BTC-USD", "tick_size": "0.01", "lot_size": "0.0001"}])
        },
    )
    control_plane.kubectl(
        "create", "secret", "generic", AGENT_TOKEN_SECRET,
        f"--from-literal=token={trader_api.AGENT_TOKEN}", "-n", namespace,
    )  # fmt: skip
    health_port = processes.free_port()
    start_operator(
        SAPPHIRE_TRADER_API_URL=api.url,
        SAPPHIRE_AGENT_REDIS_URL=own_redis_server.url,
        SAPPHIRE_TRADER_API_TOKEN=trader_api.READ_TOKEN,
        SAPPHIRE_AGENT_METRICS_PORT=str(health_port),
    )
    quick = [
        {"name": "SAPPHIRE_HEALTH_FAILING_SECONDS", "value": "3"},
        {"name": "SAPPHIRE_BACKOFF_MAX_SECONDS", "value": "0.5"},
    ]
    frail = trading_agent(
        "frail", "momentum", podTemplate={"spec": {"containers": [{"name": "agent", "env": quick}]}}
    )
    kube.apply(control_plane, frail, namespace)
    path = f"/apis/trading.sapphire-ai.com/v1alpha1/namespaces/{namespace}/tradingagents/frail"

    def ready_condition(body: Json) -> Json:
        return next((c for c in body.get("status", {}).get("conditions", []) if c["type"] == "Ready"), {})

    degraded = kube.wait_for(
        control_plane,
        path,
        lambda b: (
            b.get("status", {}).get("phase") == "Degraded"
            and ready_condition(b).get("reason") in {"AgentRestarted", "CrashLoopBackOff"}
        ),
        timeout=90,
        what="the agent Degraded after its loops died",
    )
    message = ready_condition(degraded)["message"]
    print(f"Degraded: {message}")  # for `pytest -s`: what `kubectl describe ta frail` shows
    assert "last exit code 1 (Error): agent unhealthy: loop" in message
    assert "failing for" in message

    def restarts() -> int:
        with control_plane.client() as client:
            pods = client.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"]
        (pod,) = [p for p in pods if p["metadata"]["labels"].get("trading.sapphire-ai.com/agent") == "frail"]
        return int(pod["status"]["containerStatuses"][0]["restartCount"])

    processes.wait_until(lambda: restarts() >= 1, timeout=30, what="the node restarting the agent")

    # The API comes up: the restarted agent reaches it, turns ready, and the agent recovers.
    api.start(timeout=120)
    try:
        recovered = kube.wait_for(
            control_plane,
            path,
            lambda b: b.get("status", {}).get("phase") == "Running",
            timeout=90,
            what="the agent Running again",
        )
        assert ready_condition(recovered)["reason"] == "AgentReady"
        health = httpx.get(f"http://127.0.0.1:{health_port}/readyz", timeout=5)
        assert health.status_code == 200
        assert health.json()["reasons"] == []
    finally:
        api.stop()
