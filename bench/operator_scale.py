"""operator_scale: the operator on the test control plane (K1), at scale and per object.

Everything is real except the kubelet: etcd, kube-apiserver and kube-controller-manager
from ``tests.support.kube``, the operator as its own ``sapphire operator run`` process with
its least-privilege RBAC and production timing settings, and (for MigrationRuns only)
``tests.support.node.ProcessNode`` running pods as local processes. Times are taken by
watches of this process on the API server (one thread per resource, a receive timestamp
per event), so every figure includes the API server's watch delivery, as a user would see.

* **single apply -> Deployment**: clock starts when ``kubectl apply`` of one TradingAgent
  is launched, stops when the watch delivers its Deployment. One at a time, on an idle
  operator.
* **burst**: 300 TradingAgents in one ``kubectl apply``; clock stops when every one has its
  Deployment, and when every one has a ``status.phase``. No node runs during this part, so
  the agents' pods stay unscheduled (phase ``Starting``) and 300 processes do not compete
  with the operator for the two cores.
* **MigrationRun exit -> Succeeded**: clock starts when the watch delivers the pod status in
  which the ``migrate`` container has terminated (as the node reported it), stops when the
  watch delivers the MigrationRun with ``phase: Succeeded``. Each run migrates a fresh
  database on the benchmark's Postgres to head.

The floor is the round trip of ``kubectl apply`` of a bare Deployment (zero replicas):
launching kubectl and one write to the API server, which every apply above pays too. The
burst's own floor is one ``kubectl apply`` of as many bare Deployments, just before it, with
the operator idle. During the burst the benchmark reads the CPU of the operator and of each
control-plane process (they share the two cores), and counts the operator's API requests
per agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench import environment, procstat, report
from sapphire.operator import resync
from sapphire.resources import crdgen, migrationrun
from tests.support import kube, processes
from tests.support import node as process_node
from tests.support import operator as operator_support

NAME = "operator_scale"
GROUP = "/apis/trading.sapphire-ai.com/v1alpha1"
SLEEP = ["python3", "-c", "import time; time.sleep(3600)"]
OPERATOR_ENV = {
    # Production defaults (operator/settings.py), not the test suite's shortened ones.
    "SAPPHIRE_RECONCILE_INTERVAL_SECONDS": "10",
    "SAPPHIRE_MIGRATION_POLL_SECONDS": "2",
    "SAPPHIRE_MIGRATION_RETRY_BACKOFF_SECONDS": "10",
}


@dataclass(frozen=True)
class Sizes:
    agents: int = 300
    single_applies: int = 20
    floor_applies: int = 20
    migration_runs: int = 5


FULL = Sizes()
SMOKE = Sizes(agents=5, single_applies=2, floor_applies=2, migration_runs=1)


@dataclass
class Seen:
    """First receive times (``time.monotonic``) of watch events, by name, under one lock."""

    times: dict[str, float] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def mark(self, name: str) -> None:
        with self.changed:
            if name not in self.times:
                self.times[name] = time.monotonic()
                self.changed.notify_all()

    def wait(self, names: list[str], *, timeout: float) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not all(n in self.times for n in names):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [n for n in names if n not in self.times]
                    raise TimeoutError(
                        f"timed out after {timeout}s; {len(missing)} missing, e.g. {missing[:3]}"
                    )
                self.changed.wait(left)
            return {n: self.times[n] for n in names}


class Watch:
    """List, then watch ``path`` on a thread, handing every object to ``handle``."""

    def __init__(self, plane: kube.ControlPlane, path: str, handle: Callable[[kube.Json], None]) -> None:
        self.plane, self.path, self.handle = plane, path, handle
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"watch {path}", daemon=True)

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                with self.plane.client(timeout=30) as client:
                    listing = client.get(self.path)
                    listing.raise_for_status()
                    for item in listing.json()["items"]:
                        self.handle(item)
                    version = listing.json()["metadata"]["resourceVersion"]
                    params = {"watch": "1", "resourceVersion": version, "timeoutSeconds": "5"}
                    with client.stream("GET", self.path, params=params) as stream:
                        for line in stream.iter_lines():
                            if self.stopped.is_set():
                                return
                            event = json.loads(line) if line else {}
                            if event.get("type") in ("ADDED", "MODIFIED"):
                                self.handle(event["object"])
            except (httpx.HTTPError, ValueError, KeyError):
                self.stopped.wait(0.2)

    def __enter__(self) -> Watch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=15)


def trading_agent(name: str) -> kube.Json:
    return operator_support.sleeping_agent(name)


def bare_deployment(name: str) -> kube.Json:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "none", "command": SLEEP}]},
            },
        },
    }


def migration_run(name: str, secret: str) -> kube.Json:
    return {
        "apiVersion": "trading.sapphire-ai.com/v1alpha1",
        "kind": "MigrationRun",
        "metadata": {"name": name},
        "spec": {
            "revision": "head",
            "database": {"name": f"db-{name}", "urlSecretRef": {"name": secret, "key": "url"}},
        },
    }


def _timed_apply(plane: kube.ControlPlane, manifest: kube.Json | str, namespace: str) -> tuple[float, float]:
    started = time.monotonic()
    kube.apply(plane, manifest, namespace)
    return started, time.monotonic()


@contextlib.contextmanager
def _control_plane(existing: kube.ControlPlane | None) -> Iterator[kube.ControlPlane]:
    if existing is not None:  # the test session's plane: its owner stops it
        yield existing
        return
    plane = kube.start_control_plane()
    try:
        yield plane
    finally:
        if plane.node is not None:
            plane.node.stop()
        plane.stop()


def _measure(
    services: environment.Services, sizes: Sizes, existing: kube.ControlPlane | None
) -> dict[str, Any]:
    """The whole benchmark, synchronous (kubectl and the watches block)."""
    with _control_plane(existing) as plane:
        plane.kubectl("apply", "-f", str(kube.REPOSITORY / "crds"))
        for resource in crdgen.RESOURCES:
            plane.kubectl("wait", "--for=condition=Established", f"crd/{resource.crd_name}", "--timeout=60s")
        operator_support.install_cluster_roles(plane)
        with kube.fresh_namespace(plane, "bench") as namespace:
            kubeconfig = operator_support.grant_operator(plane, namespace)
            token = ["sapphire-agent-token", "--from-literal=token=bench"]
            plane.kubectl("create", "secret", "generic", *token, "-n", namespace)
            deployments, phases, exited, succeeded = Seen(), Seen(), Seen(), Seen()

            def on_deployment(body: kube.Json) -> None:
                deployments.mark(body["metadata"]["name"])

            def on_agent(body: kube.Json) -> None:
                if (body.get("status") or {}).get("phase"):
                    phases.mark(body["metadata"]["name"])

            def on_run(body: kube.Json) -> None:
                if (body.get("status") or {}).get("phase") == "Succeeded":
                    succeeded.mark(body["metadata"]["name"])

            def on_pod(body: kube.Json) -> None:
                run = body["metadata"].get("labels", {}).get("trading.sapphire-ai.com/migrationrun")
                for status in (body.get("status") or {}).get("containerStatuses") or []:
                    if (
                        run
                        and status["name"] == migrationrun.MIGRATION_CONTAINER
                        and "terminated" in status["state"]
                    ):
                        exited.mark(run)

            watches = [
                Watch(plane, f"/apis/apps/v1/namespaces/{namespace}/deployments", on_deployment),
                Watch(plane, f"{GROUP}/namespaces/{namespace}/tradingagents", on_agent),
                Watch(plane, f"{GROUP}/namespaces/{namespace}/migrationruns", on_run),
                Watch(plane, f"/api/v1/namespaces/{namespace}/pods", on_pod),
            ]
            operator = operator_support.OperatorProcess(
                kubeconfig=kubeconfig, namespace=namespace, env=OPERATOR_ENV
            )
            with contextlib.ExitStack() as stack:
                for watch in watches:
                    stack.enter_context(watch)
                operator.start()
                stack.callback(operator.stop)
                measured = _scenarios(
                    plane, services, sizes, namespace, deployments, phases, exited, succeeded, operator
                )
                return measured


def _scenarios(
    plane: kube.ControlPlane,
    services: environment.Services,
    sizes: Sizes,
    namespace: str,
    deployments: Seen,
    phases: Seen,
    exited: Seen,
    succeeded: Seen,
    operator: operator_support.OperatorProcess,
) -> dict[str, Any]:
    floor = []
    for index in range(sizes.floor_applies + 1):
        started, ended = _timed_apply(plane, bare_deployment(f"floor-{index}"), namespace)
        if index:  # the first apply fills kubectl's discovery cache
            floor.append(ended - started)

    single = []
    for index in range(sizes.single_applies + 1):
        name = f"single-{index}"
        started, _ = _timed_apply(plane, trading_agent(name), namespace)
        seen = deployments.wait([f"agent-{name}"], timeout=120)[f"agent-{name}"]
        if index:  # the first one also warms the operator's clients
            single.append(seen - started)

    # The burst's floor: as many bare Deployments in one apply, which the controller-manager
    # answers with their ReplicaSets, while the operator idles.
    bare = [bare_deployment(f"floor-burst-{index}") for index in range(sizes.agents)]
    started, applied = _timed_apply(
        plane, yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": bare}), namespace
    )
    burst_floor = applied - started

    names = [f"burst-{index}" for index in range(sizes.agents)]
    listing = {"apiVersion": "v1", "kind": "List", "items": [trading_agent(n) for n in names]}
    meter = _ControlPlaneMeter(plane, operator)
    cpu_before, requests_before = meter.read(), operator.metric(REQUESTS)
    started, applied = _timed_apply(plane, yaml.safe_dump(listing), namespace)
    timeout = 120 + sizes.agents * 2.0
    created = deployments.wait([f"agent-{n}" for n in names], timeout=timeout)
    phased = phases.wait(names, timeout=timeout)
    burst_cpu = procstat.Meter.spent(cpu_before, meter.read())
    burst_requests = operator.metric(REQUESTS) - requests_before
    calls_per_agent = _calls_per_unchanged_resync(operator, agents=len(names) + sizes.single_applies + 1)

    # Before any node runs: delete the agents so that their pods never start.
    plane.kubectl("delete", "tradingagents", "--all", "-n", namespace, "--wait=true", timeout=600)
    processes.wait_until(
        lambda: not plane.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout.strip(),
        timeout=300,
        interval=1,
        what="the agents' pods to be gone",
    )
    if plane.owns_nodes and plane.node is None:
        plane.node = process_node.ProcessNode(plane)
        plane.node.start()
    migrations = []
    for index in range(sizes.migration_runs):
        name, database = f"migrate-{index}", services.postgres.create_database()
        try:
            plane.kubectl(
                "create", "secret", "generic", name, f"--from-literal=url={database}", "-n", namespace
            )  # fmt: skip
            kube.apply(plane, migration_run(name, name), namespace)
            done = succeeded.wait([name], timeout=180)[name]
            migrations.append(done - exited.wait([name], timeout=5)[name])
        finally:
            services.postgres.drop_database(database)
    return {
        "kubernetes": kube.server_version(plane),
        "floor": floor,
        "single": single,
        "burst_apply": applied - started,
        "burst_deployments": max(created.values()) - started,
        "burst_phases": max(phased.values()) - started,
        "burst_floor": burst_floor,
        "burst_cpu": burst_cpu,
        "burst_requests_per_agent": burst_requests / sizes.agents,
        "migrations": migrations,
        "calls_per_agent_per_resync": calls_per_agent,
    }


REQUESTS = "sapphire_operator_api_requests_total"
"""The operator's Kubernetes API requests, by trigger and verb."""


@dataclass(frozen=True)
class _ControlPlaneMeter:
    """CPU seconds of the operator and of each control-plane process (etcd, kube-apiserver,
    kube-controller-manager), when the plane is one this run started."""

    plane: kube.ControlPlane
    operator: operator_support.OperatorProcess

    def read(self) -> dict[str, float]:
        readings = {
            "operator": procstat.own_seconds(self.operator.process.pid) if self.operator.process else 0.0
        }
        for process in self.plane.processes:
            found = procstat.stat(process.pid)
            if found is not None:
                readings[found.comm] = found.own / procstat.TICK
        return readings


def _resync_reconciles(operator: operator_support.OperatorProcess) -> float:
    return operator.metric("sapphire_operator_reconciles_total", kind="TradingAgent", trigger="resync")


def _calls_per_unchanged_resync(
    operator: operator_support.OperatorProcess, *, agents: int
) -> tuple[float, float]:
    """Kubernetes API requests per agent reconciled, over two resync passes after the burst has
    settled: those the resync's own reconciles sent (the operator attributes each request to the
    trigger of its reconcile: ``sapphire_operator_api_requests_total``), and every request the
    operator sent meanwhile, per resync reconcile (the deployments' and pods' events included)."""
    settled = _resync_reconciles(operator) + agents  # a whole pass after every phase was set
    processes.wait_until(lambda: _resync_reconciles(operator) >= settled, timeout=120, what="a settling pass")
    counted = _resync_reconciles(operator)
    own, every = operator.metric(REQUESTS, trigger=resync.TRIGGER), operator.metric(REQUESTS)
    processes.wait_until(
        lambda: _resync_reconciles(operator) >= counted + 2 * agents, timeout=120, what="two resync passes"
    )
    reconciles = _resync_reconciles(operator) - counted
    return (
        (operator.metric(REQUESTS, trigger=resync.TRIGGER) - own) / reconciles,
        (operator.metric(REQUESTS) - every) / reconciles,
    )


def _p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def run(
    services: environment.Services,
    sizes: Sizes = FULL,
    *,
    results: Path = report.RESULTS,
    profile: bool = True,
    plane: kube.ControlPlane | None = None,
) -> report.Report:
    """Starts a control plane of its own unless ``plane`` is given (the tests' session plane,
    whose process node then runs from the start). ``results`` and ``profile`` are unused:
    the operator is its own process, and its metrics (reconciles and API requests by trigger)
    are the profile of a miss."""
    measured = await asyncio.to_thread(_measure, services, sizes, plane)
    versions = {**services.versions(), "kubernetes": measured["kubernetes"]}
    result = report.Report(
        name=NAME, method=__doc__ or "", sizes=asdict(sizes), versions=versions,
        settings={"operator": OPERATOR_ENV, "operator_processes": 1},
    )  # fmt: skip
    floor = _p50_ms(measured["floor"])
    single = _p50_ms(measured["single"])
    migration = _p50_ms(measured["migrations"])
    result.figures = {
        "single_apply_to_deployment_p50": report.Figure(single, "ms"),
        "burst_kubectl_apply": report.Figure(
            measured["burst_apply"], "s", f"{sizes.agents} agents, one apply"
        ),
        "burst_all_deployments": report.Figure(measured["burst_deployments"], "s"),
        "burst_all_phases": report.Figure(measured["burst_phases"], "s"),
        "burst_phases_after_apply_returned": report.Figure(
            measured["burst_phases"] - measured["burst_apply"],
            "s",
            "the operator's part, once kubectl is done",
        ),
        "burst_agents_per_s": report.Figure(sizes.agents / measured["burst_phases"], "agents/s"),
        "burst_api_calls_per_agent": report.Figure(
            measured["burst_requests_per_agent"], "calls", "the operator's requests, every trigger"
        ),
        **{
            f"burst_cpu_{name.replace('-', '_')}": report.Figure(seconds, "s", "CPU during the burst")
            for name, seconds in measured["burst_cpu"].items()
        },
        "migration_exit_to_succeeded_p50": report.Figure(migration, "ms"),
        "api_calls_per_agent_per_unchanged_resync": report.Figure(
            measured["calls_per_agent_per_resync"][0], "calls", "target <= 1"
        ),
        "all_api_calls_per_resync_reconcile": report.Figure(
            measured["calls_per_agent_per_resync"][1], "calls", "events' reconciles included"
        ),
    }
    result.floor["kubectl_apply_deployment_p50"] = report.Figure(floor, "ms")
    result.floor["burst_kubectl_apply_bare_deployments"] = report.Figure(
        measured["burst_floor"], "s", f"{sizes.agents} zero-replica Deployments, one apply, operator idle"
    )
    result.ratios = {
        "single_apply_over_floor": report.Figure(single / floor, "x"),
        "burst_over_floor": report.Figure(
            measured["burst_phases"] * 1000 / floor, "x", "all phases / one apply"
        ),
        "burst_over_burst_floor": report.Figure(
            measured["burst_phases"] / measured["burst_floor"],
            "x",
            "all phases / the same apply of bare Deployments",
        ),
        "burst_per_agent_over_floor": report.Figure(
            measured["burst_phases"] * 1000 / sizes.agents / floor, "x", "per agent"
        ),
        "migration_over_floor": report.Figure(migration / floor, "x"),
    }
    result.targets = [  # O3 item 9
        report.Target("burst_all_phases", "<=", 30),
        report.Target("api_calls_per_agent_per_unchanged_resync", "<=", 1),
    ]
    return result
