"""A TradingAgent becomes a running agent Deployment and stays converged, whatever happens to it.

The operator runs as a real ``sapphire operator run`` process under its own ServiceAccount.
The agent's command is replaced through ``podTemplate`` by a long sleep: these tests are
about the life cycle; the real agent command is covered by the agents' tests.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.operator.conftest import AGENT_TOKEN_SECRET
from tests.support import kube, processes
from tests.support import operator as operator_support

pytestmark = pytest.mark.k8s

StartOperator = Callable[..., operator_support.OperatorProcess]
agent = operator_support.sleeping_agent


def agent_path(namespace: str, name: str) -> str:
    return f"/apis/trading.sapphire-ai.com/v1alpha1/namespaces/{namespace}/tradingagents/{name}"


def deployment_path(namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/agent-{name}"


phase_is = operator_support.phase_in


def condition(body: kube.Json, kind: str) -> kube.Json:
    return next(c for c in body["status"]["conditions"] if c["type"] == kind)


def test_an_agent_becomes_running_and_ready(
    control_plane: kube.ControlPlane, namespace: str, start_operator: StartOperator, agent_token: None
) -> None:
    operator = start_operator()
    kube.apply(control_plane, agent("momo", symbols=[]), namespace)
    body = kube.wait_for(control_plane, agent_path(namespace, "momo"), phase_is("Running"), timeout=60)
    assert condition(body, "Ready")["status"] == "True"
    assert body["status"]["readyReplicas"] == 1
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
    deployment = kube.wait_for(control_plane, deployment_path(namespace, "momo"), lambda d: True)
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == "TradingAgent"
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    table = control_plane.kubectl("get", "ta", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "ROLE", "SYMBOLS", "MODEL", "PHASE", "READY", "LAST-SIGNAL", "AGE"]
    assert row.split()[:5] == ["momo", "momentum", "ALL", "Running", "True"]
    events = control_plane.kubectl(
        "get", "events", "-n", namespace, "--field-selector=involvedObject.name=momo"
    ).stdout
    assert "Running" in events
    assert httpx.get(f"http://127.0.0.1:{operator.health_port}/healthz", timeout=5).status_code == 200
    metrics = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).text
    assert 'sapphire_operator_reconciles_total{kind="TradingAgent"' in metrics
    assert 'sapphire_operator_reconcile_duration_seconds_count{kind="TradingAgent"}' in metrics
    assert 'sapphire_operator_objects{kind="TradingAgent",phase="Running"} 1.0' in metrics


def test_editing_symbols_rolls_the_deployment(
    control_plane: kube.ControlPlane, namespace: str, start_operator: StartOperator, agent_token: None
) -> None:
    start_operator()
    kube.apply(control_plane, agent("roller"), namespace)
    first = kube.wait_for(control_plane, agent_path(namespace, "roller"), phase_is("Running"), timeout=60)
    kube.apply(control_plane, agent("roller", symbols=["BTC-USD", "ETH-USD"]), namespace)

    def rolled(body: kube.Json) -> bool:
        status = body.get("status", {})
        advanced = int(status.get("observedGeneration", 0)) > int(first["status"]["observedGeneration"])
        return advanced and status.get("phase") == "Running"

    kube.wait_for(control_plane, agent_path(namespace, "roller"), rolled, timeout=60)
    deployment = kube.wait_for(
        control_plane,
        deployment_path(namespace, "roller"),
        lambda d: d.get("status", {}).get("updatedReplicas") == 1 and d["status"].get("readyReplicas") == 1,
    )
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SAPPHIRE_SYMBOLS"] == '["BTC-USD", "ETH-USD"]'
    revision = deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
    assert revision == "2"


def test_pause_scales_to_zero_and_resume_brings_it_back(
    control_plane: kube.ControlPlane, namespace: str, start_operator: StartOperator, agent_token: None
) -> None:
    start_operator()
    kube.apply(control_plane, agent("napper"), namespace)
    kube.wait_for(control_plane, agent_path(namespace, "napper"), phase_is("Running"), timeout=60)
    kube.apply(control_plane, agent("napper", paused=True), namespace)
    paused = kube.wait_for(control_plane, agent_path(namespace, "napper"), phase_is("Paused"), timeout=60)
    assert condition(paused, "Ready")["reason"] == "Paused"
    kube.wait_for(control_plane, deployment_path(namespace, "napper"), lambda d: d["spec"]["replicas"] == 0)
    kube.apply(control_plane, agent("napper", paused=False), namespace)
    kube.wait_for(control_plane, agent_path(namespace, "napper"), phase_is("Running"), timeout=60)


def test_a_deployment_deleted_by_hand_is_recreated(
    control_plane: kube.ControlPlane, namespace: str, start_operator: StartOperator, agent_token: None
) -> None:
    start_operator()
    kube.apply(control_plane, agent("phoenix"), namespace)
    kube.wait_for(control_plane, agent_path(namespace, "phoenix"), phase_is("Running"), timeout=60)
    before = kube.wait_for(control_plane, deployment_path(namespace, "phoenix"), lambda d: True)
    control_plane.kubectl("delete", "deployment", "agent-phoenix", "-n", namespace, "--wait=false")
    after = kube.wait_for(
        control_plane,
        deployment_path(namespace, "phoenix"),
        lambda d: d["metadata"]["uid"] != before["metadata"]["uid"],
        timeout=60,
    )
    assert after["spec"]["replicas"] == 1
    kube.wait_for(control_plane, agent_path(namespace, "phoenix"), phase_is("Running"), timeout=60)


def test_deleting_the_agent_garbage_collects_its_deployment(
    control_plane: kube.ControlPlane, namespace: str, start_operator: StartOperator, agent_token: None
) -> None:
    start_operator()
    kube.apply(control_plane, agent("mortal"), namespace)
    kube.wait_for(control_plane, agent_path(namespace, "mortal"), phase_is("Running"), timeout=60)
    body = kube.wait_for(control_plane, agent_path(namespace, "mortal"), lambda b: True)
    assert not body["metadata"].get("finalizers"), "no finalizer should block deletion"
    control_plane.kubectl("delete", "ta", "mortal", "-n", namespace, "--timeout=30s")
    kube.wait_for(
        control_plane,
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        lambda listing: not listing["items"],
        timeout=60,
        what="the Deployment to be garbage-collected",
    )


def test_a_restarted_operator_converges_without_duplicates(
    control_plane: kube.ControlPlane, namespace: str, start_operator: StartOperator, agent_token: None
) -> None:
    first = start_operator()
    for name in ("one", "two", "three"):
        kube.apply(control_plane, agent(name), namespace)
    kube.wait_for(control_plane, agent_path(namespace, "one"), phase_is("Running"), timeout=60)
    first.kill()
    # While the operator is down: a new agent, and a deleted Deployment.
    kube.apply(control_plane, agent("four"), namespace)
    control_plane.kubectl("delete", "deployment", "agent-two", "-n", namespace, "--wait=false")
    start_operator()
    for name in ("one", "two", "three", "four"):
        kube.wait_for(control_plane, agent_path(namespace, name), phase_is("Running"), timeout=90)
    deployments = control_plane.kubectl("get", "deployments", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(deployments) == [f"deployment.apps/agent-{n}" for n in ("four", "one", "three", "two")]
    pods = control_plane.kubectl(
        "get", "pods", "-n", namespace, "--field-selector=status.phase=Running", "-o", "name"
    ).stdout.split()
    assert len(pods) == 4


def test_a_missing_secret_degrades_the_agent_until_it_appears(
    control_plane: kube.ControlPlane, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    kube.apply(control_plane, agent("needy"), namespace)
    degraded = kube.wait_for(control_plane, agent_path(namespace, "needy"), phase_is("Degraded"), timeout=60)
    ready = condition(degraded, "Ready")
    assert ready["reason"] == "CreateContainerConfigError"
    assert AGENT_TOKEN_SECRET in ready["message"]
    control_plane.kubectl(
        "create",
        "secret",
        "generic",
        AGENT_TOKEN_SECRET,
        "--from-literal=token=t",
        "-n",
        namespace,
    )
    kube.wait_for(control_plane, agent_path(namespace, "needy"), phase_is("Running"), timeout=60)
    events = control_plane.kubectl(
        "get", "events", "-n", namespace, "--field-selector=involvedObject.name=needy"
    ).stdout
    assert "Degraded" in events


def resync_reconciles(operator: operator_support.OperatorProcess) -> float:
    return operator.metric("sapphire_operator_reconciles_total", kind="TradingAgent", trigger="resync")


def test_a_resync_that_finds_nothing_changed_costs_one_request_per_agent(
    control_plane: kube.ControlPlane, namespace: str, start_operator: StartOperator, agent_token: None
) -> None:
    operator = start_operator()
    names = ["calm-1", "calm-2", "calm-3"]
    for name in names:
        kube.apply(control_plane, agent(name), namespace)
    for name in names:
        kube.wait_for(control_plane, agent_path(namespace, name), phase_is("Running"), timeout=60)
    # Settled: one resync pass over every agent has run since they were all Running.
    settled = resync_reconciles(operator) + len(names)
    processes.wait_until(lambda: resync_reconciles(operator) >= settled, timeout=30, what="a settling pass")
    mark, counted = len(operator.output()), resync_reconciles(operator)
    processes.wait_until(
        lambda: resync_reconciles(operator) >= counted + 2 * len(names), timeout=30, what="two resync passes"
    )
    requests = [line for line in operator.output()[mark:].splitlines() if "HTTP Request:" in line]
    reconciles = resync_reconciles(operator) - counted
    assert reconciles >= 2 * len(names)
    print(f"requests: {len(requests)} for {reconciles:.0f} resync reconciles")  # for `pytest -s`
    assert requests, "the operator's log shows its requests"
    assert len(requests) <= reconciles, "\n".join(requests)
    assert all(" GET " in line and "/tradingagents/calm-" in line for line in requests), "\n".join(requests)
