"""The TradingAgent status has one writer: the trading figures are read by the agent's own
reconcile, under its lock, and written in the same patch. So a slow trader API can no longer
write back a Ready condition that a newer reconcile has replaced, and a reconcile that finds
its agent deleted under it ends quietly.

The trader API is the real one (Postgres, migrations); a holding proxy in front of it keeps the
operator's figures request in flight while the test makes the other thing happen.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from sapphire.migrations import config as migration_config
from tests.support import holding_proxy, kube, processes, trader_api
from tests.support import operator as operator_support

pytestmark = pytest.mark.k8s

StartOperator = Callable[..., operator_support.OperatorProcess]
GROUP_PATH = "/apis/trading.sapphire-ai.com/v1alpha1"
agent = operator_support.sleeping_agent


def ready_of(body: kube.Json) -> str | None:
    for condition in body.get("status", {}).get("conditions") or []:
        if condition["type"] == "Ready":
            return str(condition["status"])
    return None


def metric(operator: operator_support.OperatorProcess, name: str) -> float:
    return operator.metric(name, kind="TradingAgent")


class ReadyHistory:
    """Every version of one TradingAgent the API server announces, from a watch: the Ready
    condition of each, and when Ready was first seen True."""

    def __init__(self) -> None:
        self.values: list[str | None] = []
        self.ready = threading.Event()
        self.ready_at = 0.0

    def record(self, body: kube.Json) -> None:
        value = ready_of(body)
        self.values.append(value)
        if value == "True" and not self.ready.is_set():
            self.ready_at = time.monotonic()
            self.ready.set()

    def reverted(self) -> bool:
        """Whether Ready was written back (to False, or out of the list) after it was True."""
        after = self.values[self.values.index("True") :] if "True" in self.values else []
        return any(value != "True" for value in after)


@contextmanager
def watching(plane: kube.ControlPlane, namespace: str, name: str) -> Iterator[ReadyHistory]:
    history = ReadyHistory()
    client = plane.client(timeout=None)  # type: ignore[arg-type]  # a watch has no read deadline
    url = f"{GROUP_PATH}/namespaces/{namespace}/tradingagents"
    params = {"watch": "true", "fieldSelector": f"metadata.name={name}"}

    opened = threading.Event()
    closed = threading.Event()

    def follow() -> None:
        # A watch started without a resourceVersion begins with the object as it is (ADDED);
        # one refused while the API server's watch cache warms up (429, or an ERROR event) is
        # started again after the retryAfterSeconds the server asks for, or at once ended when
        # the test is over. The test itself waits on `opened`, a fact, not on these retries.
        version = ""
        while not closed.is_set():
            retry_after = 1.0
            try:
                with client.stream("GET", url, params={**params, "resourceVersion": version}) as stream:
                    if stream.status_code == 200:
                        opened.set()
                    for line in stream.iter_lines():
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            retry_after = float(
                                event["object"].get("details", {}).get("retryAfterSeconds", 1)
                            )
                            break
                        if event["type"] in ("ADDED", "MODIFIED"):
                            version = event["object"]["metadata"]["resourceVersion"]
                            history.record(event["object"])
                    else:
                        continue  # the server ended the watch: resume from the last version
            except (httpx.HTTPError, RuntimeError):
                return  # the client was closed: the test is over
            except KeyError:
                pass  # a refusal comes as a bare Status, not as an event
            closed.wait(retry_after)

    thread = threading.Thread(target=follow, name="ready-history", daemon=True)
    thread.start()
    try:
        if not opened.wait(timeout=60):
            raise TimeoutError("timed out after 60s waiting for the watch of the TradingAgent to open")
        yield history
    finally:
        closed.set()
        client.close()
        thread.join(timeout=5)


def start_reading_figures(
    start_operator: StartOperator, proxy: holding_proxy.HoldingProxy, **env: str
) -> operator_support.OperatorProcess:
    """The operator, reading figures from the real trader API through ``proxy``."""
    return start_operator(
        SAPPHIRE_TRADER_API_URL=proxy.url, SAPPHIRE_TRADER_API_TOKEN=trader_api.READ_TOKEN, **env
    )


@pytest.fixture
def real_trader_api(database_url: str, redis_url: str) -> Iterator[trader_api.TraderApi]:
    migration_config.upgrade(database_url)
    with trader_api.running_trader_api(database_url=database_url, redis_url=redis_url) as api:
        yield api


def test_a_slow_figures_read_never_reverts_a_ready_transition(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    agent_token: None,
    real_trader_api: trader_api.TraderApi,
) -> None:
    with (
        holding_proxy.holding_proxy(real_trader_api.url) as proxy,
        watching(control_plane, namespace, "racer") as history,
    ):
        # Each figures read is held until the agent is Ready (or 1.5 s): the read that a
        # second writer would have started from a not-yet-Ready snapshot ends after the
        # transition, which is when it used to write the old conditions back.
        proxy.hold = lambda path: (history.ready.wait(1.5), None)[1]
        operator = start_reading_figures(start_operator, proxy, SAPPHIRE_STATUS_REFRESH_SECONDS="0.2")
        kube.apply(control_plane, agent("racer"), namespace)
        stats = "/v1/agents/racer/stats"
        processes.wait_until(
            lambda: len([r for r in proxy.requests_to(stats) if r.started > history.ready_at > 0]) >= 3,
            timeout=60,
            what="three figures reads after the agent became Ready",
        )
        assert any(r.started < history.ready_at for r in proxy.requests_to(stats)), (
            "figures were being read while the agent was not Ready yet: the race was run"
        )
        assert not history.reverted(), f"Ready was written back after it was True: {history.values}"
        body = kube.wait_for(
            control_plane,
            f"{GROUP_PATH}/namespaces/{namespace}/tradingagents/racer",
            lambda b: b.get("status", {}).get("figuresUpdatedAt") is not None,
        )
    by_type = {c["type"]: c for c in body["status"]["conditions"]}
    assert by_type["Ready"]["status"] == "True"
    assert by_type["TradingFigures"]["status"] == "True", by_type["TradingFigures"]
    assert body["status"]["signalsLastHour"] == 0  # the real API's answer for a silent agent
    assert metric(operator, "sapphire_operator_reconcile_errors_total") == 0


def test_a_reconcile_that_finds_its_agent_deleted_ends_quietly(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    agent_token: None,
    real_trader_api: trader_api.TraderApi,
) -> None:
    held, release = threading.Event(), threading.Event()

    def hold(path: str) -> None:
        if path.startswith("/v1/agents/doomed/stats"):
            held.set()
            release.wait(30)

    with holding_proxy.holding_proxy(real_trader_api.url) as proxy:
        proxy.hold = hold
        operator = start_reading_figures(start_operator, proxy, SAPPHIRE_TRADER_API_TIMEOUT_SECONDS="30")
        kube.apply(control_plane, agent("doomed"), namespace)
        assert held.wait(60), "the agent's reconcile reached its figures read"
        deployment = f"/apis/apps/v1/namespaces/{namespace}/deployments/agent-doomed"
        with control_plane.client() as client:
            assert client.get(deployment).status_code == 200, "the reconcile had applied the Deployment"
        control_plane.kubectl("delete", "ta", "doomed", "-n", namespace, "--wait=true")
        deleted_at = time.monotonic()
        release.set()
        processes.wait_until(
            lambda: any(r.finished > deleted_at for r in proxy.requests_to("/v1/agents/doomed/stats")),
            timeout=30,
            what="the held figures read to finish",
        )
        processes.wait_until(
            lambda: (
                metric(operator, "sapphire_operator_reconcile_duration_seconds_count")
                >= metric(operator, "sapphire_operator_reconciles_total")
            ),
            timeout=30,
            what="every reconcile the operator started to end",
        )
    events = control_plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    reasons = [e["reason"] for e in json.loads(events)["items"] if e["involvedObject"]["name"] == "doomed"]
    assert "ReconcileFailed" not in reasons, reasons
    assert metric(operator, "sapphire_operator_reconcile_errors_total") == 0
    assert "Traceback" not in operator.output()
