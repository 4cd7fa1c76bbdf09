"""An admitted spec the operator cannot use: an older operator against a newer CRD.

The CRD is widened for the test as a newer release would widen it (a new LLM provider, a new
field),
so the API server admits what this operator's model refuses. The agent gets the InvalidSpec
phase and condition and one Warning event naming the field, kopf is told the error is
permanent, and nothing retries it until the spec changes. A field the operator does not know
is ignored, with a notice.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator

import pytest
import yaml

from tests.support import kube, processes
from tests.support import operator as operator_support

pytestmark = pytest.mark.k8s

StartOperator = Callable[..., operator_support.OperatorProcess]
CRD = kube.REPOSITORY / "crds" / "tradingagents.yaml"
GROUP_PATH = "/apis/trading.sapphire-ai.com/v1alpha1"


def newer_crd() -> kube.Json:
    """crds/tradingagents.yaml as a newer release might ship it."""
    crd: kube.Json = copy.deepcopy(yaml.safe_load(CRD.read_text()))
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["model"]["properties"]["provider"]["enum"].append("bedrock")
    spec["properties"]["futureField"] = {"type": "string", "description": "added by a newer release"}
    return crd


@pytest.fixture
def newer_crd_installed(control_plane: kube.ControlPlane, installed_crds: list[str]) -> Iterator[None]:
    kube.apply(control_plane, newer_crd())
    control_plane.kubectl("wait", "--for=condition=Established", "crd/tradingagents.trading.sapphire-ai.com")
    try:
        yield
    finally:
        control_plane.kubectl("apply", "-f", str(CRD))


def resync_reconciles(operator: operator_support.OperatorProcess) -> float:
    return operator.metric("sapphire_operator_reconciles_total", kind="TradingAgent", trigger="resync")


def requests_for(operator: operator_support.OperatorProcess, path: str) -> int:
    """Requests of the operator's own for the object (or its status), from its log."""
    return len(re.findall(re.escape(path) + r"[ /\"]", operator.output()))


def events_of(plane: kube.ControlPlane, namespace: str, name: str) -> list[kube.Json]:
    listing = json.loads(plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)
    return [e for e in listing["items"] if e["involvedObject"]["name"] == name]


def test_a_spec_the_operator_cannot_use_is_reported_once_and_not_retried(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    agent_token: None,
    newer_crd_installed: None,
) -> None:
    operator = start_operator()
    bedrock = {"provider": "bedrock", "name": "claude"}
    kube.apply(control_plane, operator_support.sleeping_agent("odd", model=bedrock), namespace)
    path = f"{GROUP_PATH}/namespaces/{namespace}/tradingagents/odd"
    body = kube.wait_for(control_plane, path, lambda b: b.get("status", {}).get("phase") == "InvalidSpec")
    conditions = {c["type"]: c for c in body["status"]["conditions"]}
    assert conditions["InvalidSpec"]["status"] == "True"
    assert "spec.model.provider" in conditions["InvalidSpec"]["message"]
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "InvalidSpec"
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
    processes.wait_until(
        lambda: any(e["reason"] == "InvalidSpec" for e in events_of(control_plane, namespace, "odd")),
        timeout=30,
        what="the InvalidSpec event",
    )
    processes.wait_until(
        lambda: "failed permanently" in operator.output(), timeout=30, what="kopf to log a permanent error"
    )

    # Nothing retries it: two resync passes (seen on a valid agent beside it) send no request for it.
    before = requests_for(operator, path)
    assert before > 0, "the operator's log shows its requests for the object"
    kube.apply(control_plane, operator_support.sleeping_agent("fine"), namespace)
    passes = resync_reconciles(operator)
    processes.wait_until(
        lambda: resync_reconciles(operator) >= passes + 2, timeout=30, what="two resync passes"
    )
    assert requests_for(operator, path) == before, "the invalid agent was retried"
    warnings = [e for e in events_of(control_plane, namespace, "odd") if e["reason"] == "InvalidSpec"]
    assert len(warnings) == 1
    assert warnings[0]["type"] == "Warning"
    assert warnings[0].get("count", 1) == 1
    assert "spec.model.provider" in warnings[0]["message"]
    assert "Traceback" not in operator.output()

    # A spec change is what helps: the agent runs, and the InvalidSpec condition is gone.
    kube.apply(control_plane, operator_support.sleeping_agent("odd"), namespace)
    body = kube.wait_for(control_plane, path, lambda b: b.get("status", {}).get("phase") == "Running")
    assert "InvalidSpec" not in {c["type"] for c in body["status"]["conditions"]}


def test_fields_of_a_newer_crd_are_ignored_with_a_notice(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    agent_token: None,
    newer_crd_installed: None,
) -> None:
    start_operator()
    kube.apply(control_plane, operator_support.sleeping_agent("newer", futureField="on"), namespace)
    path = f"{GROUP_PATH}/namespaces/{namespace}/tradingagents/newer"
    body = kube.wait_for(control_plane, path, lambda b: b.get("status", {}).get("phase") == "Running")
    assert body["spec"]["futureField"] == "on", "the API server kept the field"
    processes.wait_until(
        lambda: any(
            e["reason"] == "UnknownFieldsIgnored" and "spec.futureField" in e["message"]
            for e in events_of(control_plane, namespace, "newer")
        ),
        timeout=30,
        what="the notice naming the ignored field",
    )
