"""Operators with one peering name never both act: the highest priority one acts, a higher-priority
newcomer takes over, and one that joins below the leader stays idle."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.support import kube, processes
from tests.support import operator as operator_support

pytestmark = pytest.mark.k8s

PEERING_CRDS = kube.REPOSITORY / "manifests" / "base" / "crds" / "kopf-peering.yaml"


def reconciles(operator: operator_support.OperatorProcess) -> float:
    """Reconciles the operator counted, from its own /metrics."""
    return operator.metric("sapphire_operator_reconciles_total")


def paused_passes(operator: operator_support.OperatorProcess) -> float:
    """Passes of the operator's agent resync loop that peering told to stand aside (/metrics)."""
    return operator.metric("sapphire_operator_resync_passes_total", loop="agents", outcome="paused")


def wait_for_paused_passes(operator: operator_support.OperatorProcess, *, after: float) -> None:
    """Two more paused passes than ``after``: at least one whole pass decided after that moment,
    so its loop would have reconciled every object that existed then, had it been let act."""
    processes.wait_until(
        lambda: paused_passes(operator) >= after + 2,
        timeout=30,
        what="two resync passes of the paused operator",
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
    # The paused operator has looked since `late` exists: its resync loop ran and stood aside.
    wait_for_paused_passes(first, after=paused_passes(first))
    assert reconciles(second) > 0
    # A reconcile of `early` already running when the pause came may still finish and count, so
    # what is asserted is that the paused operator never acted on an object created after it paused.
    assert not touched(first, f"{path}/late"), "the paused operator reconciled"

    # One that joins below the live leader never acts either.
    # kopf starts a peered operator paused until its peering says it may act, so this one logs no
    # "Pausing"; what shows it has looked is its resync loop standing aside, below.
    third = start_operator(SAPPHIRE_PEERING_PRIORITY="1", **peered)
    kube.apply(control_plane, agent("later"), namespace)
    kube.wait_for(control_plane, f"{path}/later", lambda b: b.get("status", {}).get("phase") is not None)
    wait_for_paused_passes(third, after=paused_passes(third))
    assert reconciles(third) == 0, "an operator below the leader reconciled"
