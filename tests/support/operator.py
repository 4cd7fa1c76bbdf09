"""Runs the real operator (``sapphire operator run``) as a subprocess, as its ServiceAccount."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support import kube, metrics, processes

SLEEP = [sys.executable, "-c", "import time; time.sleep(3600)"]
"""The agent command of life-cycle tests: they are about the operator, not the agent."""
RBAC = kube.REPOSITORY / "manifests" / "base" / "operator-rbac.yaml"
SERVICE_ACCOUNT = "sapphire-operator"


def sleeping_agent(
    name: str, *, symbols: list[str] | None = None, paused: bool = False, **spec: Any
) -> dict[str, Any]:
    """A momentum TradingAgent whose container only sleeps (``podTemplate`` replaces its command)."""
    return {
        "apiVersion": "trading.sapphire-ai.com/v1alpha1",
        "kind": "TradingAgent",
        "metadata": {"name": name},
        "spec": {
            "role": "momentum",
            "symbols": symbols if symbols is not None else ["BTC-USD"],
            "paused": paused,
            "podTemplate": {"spec": {"containers": [{"name": "agent", "command": SLEEP, "args": []}]}},
            **spec,
        },
    }


def phase_in(*phases: str) -> Callable[[kube.Json], bool]:
    """A :func:`kube.wait_for` predicate: the object's ``status.phase`` is one of ``phases``."""
    return lambda body: body.get("status", {}).get("phase") in phases


def install_cluster_roles(plane: kube.ControlPlane) -> None:
    """Apply the operator's ClusterRoles from the shipped manifest (bindings are per test)."""
    documents = [d for d in yaml.safe_load_all(RBAC.read_text()) if d and d["kind"] == "ClusterRole"]
    plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))


def grant_operator(plane: kube.ControlPlane, namespace: str) -> Path:
    """Create the operator's ServiceAccount and RoleBinding in ``namespace``; return its kubeconfig."""
    plane.kubectl("create", "serviceaccount", SERVICE_ACCOUNT, "-n", namespace)
    plane.kubectl(
        "create", "rolebinding", SERVICE_ACCOUNT, "--clusterrole=sapphire-operator",
        f"--serviceaccount={namespace}:{SERVICE_ACCOUNT}", "-n", namespace,
    )  # fmt: skip
    return plane.serviceaccount_kubeconfig(namespace, SERVICE_ACCOUNT)


@dataclass
class OperatorProcess:
    """One ``sapphire operator run`` process watching one namespace."""

    kubeconfig: Path
    namespace: str
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(
        default_factory=lambda: Path(tempfile.mkstemp(prefix="sapphire-operator-", suffix=".log")[1])
    )
    metrics_port: int = field(default_factory=processes.free_port)
    health_port: int = field(default_factory=processes.free_port)

    def start(self) -> OperatorProcess:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "SAPPHIRE_NAMESPACES": json.dumps([self.namespace]),
            "SAPPHIRE_STANDALONE": "true",
            "SAPPHIRE_METRICS_PORT": str(self.metrics_port),
            "SAPPHIRE_HEALTH_PORT": str(self.health_port),
            "SAPPHIRE_RECONCILE_INTERVAL_SECONDS": "2",
            "SAPPHIRE_MIGRATION_POLL_SECONDS": "0.5",
            "SAPPHIRE_MIGRATION_RETRY_BACKOFF_SECONDS": "0.5",
            "SAPPHIRE_AGENT_SERVICE_ACCOUNT": "default",
            "SAPPHIRE_MIGRATION_SERVICE_ACCOUNT": "default",
            "SAPPHIRE_BACKTEST_SERVICE_ACCOUNT": "default",
            # The fake node runs every agent pod on this host: one fixed metrics port would collide.
            "SAPPHIRE_AGENT_METRICS_PORT": "0",
            "SAPPHIRE_LOG_FORMAT": "json",
            **self.env,
        }
        command = [str(Path(sys.executable).parent / "sapphire"), "operator", "run"]
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            processes.wait_until(
                lambda: processes.port_open(self.health_port),
                timeout=60,
                what="the operator's liveness endpoint",
            )
        except TimeoutError as error:
            self.stop()
            raise TimeoutError(f"{error}; operator output:\n{self.output()[-3000:]}") from None
        return self

    def kill(self) -> None:
        """SIGKILL: the crash case, with no chance to clean up."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            processes.stop_process(self.process, grace=10)
            self.process = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def metric(self, sample: str, **labels: str) -> float:
        """The sum of the operator's ``/metrics`` samples named ``sample`` whose labels include
        ``labels`` (0 when there are none yet): what the operator itself says it has done."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        return metrics.sample_sum(text, sample, labels)
