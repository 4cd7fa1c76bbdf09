"""Operators with one peering name never both act: the highest priority one acts, a higher-priority
newcomer takes over, and one that joins below the leader stays idle."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

from tests.support import kube, processes
from tests.support import operator as operator_support

pytestmark = pytest.mark.k8s

PEERING_CRDS = kube.REPOSITORY / "manifests" / "base" / "crds" / "kopf-peering.yaml"


def reconciles(operator: operator_support.OperatorProcess) -> float:
    """Reconciles the operator counted, from its own /metrics."""
    text = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("sapphire_operator_reconciles_total{")
    )


def touched(operator: operator_support.OperatorProcess, object_path: str) -> bool:
    """Whether the operator's log shows a request of its own for the object (or its status)."""
    return re.search(re.escape(object_path) + r"[ /]", operator.output()) is not None


def agent(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "trading.sapphire-ai.com/v1alpha1",
        "kind": "TradingAgent",
        "metadata": {"name": name},
        "spec": {"role": "momentum", "symbols": ["BTC-USD"]},
    }


def test_a_higher_priority_operator_takes_over_and_the_other_pauses(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: Callable[..., operator_support.OperatorProcess],
    agent_token: None,
) -> None:
    crds = [d for d in yaml.safe_load_all(PEERING_CRDS.read_text()) if d]
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(crds))
    for crd in crds:
        control_plane.kubectl("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}")
    kube.apply(
        control_plane,
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "sapphire"}},
        namespace,
    )
    peered = {"SAPPHIRE_STANDALONE": "false"}
    first = start_operator(SAPPHIRE_PEERING_PRIORITY="1", **peered)
    kube.apply(control_plane, agent("early"), namespace)
    path = f"/apis/trading.sapphire-ai.com/v1alpha1/namespaces/{namespace}/tradingagents"
    kube.wait_for(control_plane, f"{path}/early", lambda b: b.get("status", {}).get("phase") is not None)
    assert reconciles(first) > 0

    second = start_operator(SAPPHIRE_PEERING_PRIORITY="100", **peered)
    processes.wait_until(
        lambda: "Pausing operations in favour of" in first.output(),
        timeout=30,
        what="the first operator to pause",
    )
    # The first operator's log shows each object it touches: its requests for `early` prove it.
    assert touched(first, f"{path}/early")
    kube.apply(control_plane, agent("late"), namespace)
    kube.wait_for(control_plane, f"{path}/late", lambda b: b.get("status", {}).get("phase") is not None)
    time.sleep(3)  # a resync period of the paused operator (2 s in tests) has passed
    assert reconciles(second) > 0
    # A reconcile of `early` already running when the pause came may still finish and count, so
    # what is asserted is that the paused operator never acted on an object created after it paused.
    assert not touched(first, f"{path}/late"), "the paused operator reconciled"

    # One that joins below the live leader never acts either.
    third = start_operator(SAPPHIRE_PEERING_PRIORITY="1", **peered)
    kube.apply(control_plane, agent("later"), namespace)
    kube.wait_for(control_plane, f"{path}/later", lambda b: b.get("status", {}).get("phase") is not None)
    time.sleep(3)
    assert reconciles(third) == 0, "an operator below the leader reconciled"
