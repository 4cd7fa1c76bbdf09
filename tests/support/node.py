"""A process "node": the kubelet stand-in of the test control plane.

The control plane has no kubelet, so this fixture plays one node. It registers a Node,
binds every pending pod to it and runs the pod's containers as **local subprocesses**:

* The image is ignored. A container runs its ``command`` + ``args`` (``$(VAR)`` references
  expanded, as the kubelet does) in the test's own environment, with the virtualenv's
  ``bin`` first on ``PATH`` and the container's env resolved (``value``, ``secretKeyRef``,
  ``configMapKeyRef``, and ``fieldRef`` for the pod's name, namespace, uid and node).
  A container without ``command`` cannot run here and fails with ``ContainerCannotRun``.
* Init containers run in order; native sidecars (init containers with
  ``restartPolicy: Always``) start and keep running beside the main containers, and are
  stopped once the main containers of a run-to-completion pod have finished.
* ``terminationMessagePath`` maps to a file of this node's: every occurrence of the path in
  the container's command, args and env values is replaced by that file's path, the way a
  kubelet bind-mounts it. Its content becomes the terminated state's ``message``.
* Status (phase, conditions, container states with exit codes and reasons) is written back.
  ``restartPolicy`` is honoured, with a short capped backoff (0.5 s doubling to 4 s, where a
  kubelet waits 10 s to 5 min), so Deployment pods restart quickly in tests.
* Deleting a pod sends SIGTERM to each container's process group, SIGKILL after the grace
  period, then removes the pod object, as a kubelet confirms a deletion.
* A missing Secret or ConfigMap leaves the container waiting with ``CreateContainerConfigError``
  and is retried every second, so a Secret created later lets the pod start.
* A PersistentVolumeClaim volume is a directory of this node's per namespace and claim
  (:meth:`ProcessNode.claim_directory`), bound like the termination message: its mount path
  in the command, args and env values is replaced by that directory. The claim object itself
  is not needed. Other volumes are not mounted.
* Probes (``httpGet`` on 127.0.0.1, and ``exec`` run in the container's environment) are
  honoured with their delay, period, timeout and thresholds: readiness decides the
  container's ``ready`` and the pod's Ready condition (a container without one is ready
  while running); liveness kills the container's process group after ``failureThreshold``
  failures, and the restart policy brings it back, with ``restartCount`` and ``lastState``
  as a kubelet reports them. Resources are not enforced.

Every process is killed when the node stops, so a session leaves no orphans.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.support.kube import ControlPlane, Json

VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ConfigError(Exception):
    """A referenced Secret, ConfigMap or key is missing (the kubelet's CreateContainerConfigError)."""


@dataclass
class Probe:
    """One probe of a running container: when it is next due, and its consecutive results."""

    spec: Json
    due: float
    failures: int = 0
    successes: int = 0

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds", 10))

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeoutSeconds", 1))


@dataclass
class Container:
    """One container of a pod and its current process."""

    spec: Json
    sidecar: bool = False
    init: bool = False
    process: subprocess.Popen[bytes] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    message: str = ""
    reason: str = ""
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    restarts: int = 0
    next_start: float = 0.0
    termination_file: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    last_terminated: Json | None = None
    ready: bool = False
    probes: dict[str, Probe] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class PodRunner:
    """Runs one pod's containers and reports their state (one thread per pod)."""

    node: ProcessNode
    pod: Json
    directory: Path
    stop_requested: threading.Event = field(default_factory=threading.Event)
    stopped: threading.Event = field(default_factory=threading.Event)
    grace_seconds: float = 30.0
    containers: list[Container] = field(default_factory=list)
    thread: threading.Thread | None = None

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def restart_policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy", "Always"))

    def start(self) -> None:
        spec = self.pod["spec"]
        for init in spec.get("initContainers", []):
            self.containers.append(Container(init, sidecar=init.get("restartPolicy") == "Always", init=True))
        self.containers.extend(Container(c) for c in spec["containers"])
        self.thread = threading.Thread(
            target=self._run, name=f"pod-{self.namespace}/{self.name}", daemon=True
        )
        self.thread.start()

    def request_stop(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.stop_requested.set()

    # -- the pod's life -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            with self.node.plane.client() as client:
                self._lifecycle(client)
        finally:
            self._kill_all(self.grace_seconds)
            self.stopped.set()

    def _lifecycle(self, client: httpx.Client) -> None:
        self._report(client)
        regular_inits = [c for c in self.containers if c.init and not c.sidecar]
        while not self.stop_requested.is_set():
            changed = False
            for container in self._startable():
                changed |= self._start(client, container)
            changed |= self._reap()
            changed |= self._probe()
            if changed:
                self._report(client)
            if self._finished(regular_inits):
                self._kill_all(grace=5)
                self._report(client)
                return
            self.stop_requested.wait(0.05)

    def _startable(self) -> list[Container]:
        """Containers whose turn it is: init containers one by one, then the main ones."""
        ready: list[Container] = []
        for container in self.containers:
            if not container.init:
                ready.append(container)
                continue
            if container.sidecar:
                ready.append(container)
                if container.started_at is None:
                    return ready  # the next step waits for this sidecar to have started
                continue
            if container.exit_code != 0:
                ready.append(container)
                return ready  # a regular init container must succeed before the next one
        return ready

    def _may_restart(self, container: Container) -> bool:
        if container.sidecar:
            return True
        if self.restart_policy == "Always" and not container.init:
            return True
        return self.restart_policy in ("Always", "OnFailure") and container.exit_code not in (None, 0)

    def _start(self, client: httpx.Client, container: Container) -> bool:
        if container.process is not None or time.monotonic() < container.next_start:
            return False  # running, or exited and not yet reaped
        if container.exit_code is not None and not self._may_restart(container):
            return False
        if self._main_done():
            return False
        try:
            argv, env = self._resolve(client, container)
        except ConfigError as error:
            changed = container.waiting != ("CreateContainerConfigError", str(error))
            container.waiting = ("CreateContainerConfigError", str(error))
            container.next_start = time.monotonic() + 1.0
            return changed
        if container.exit_code is not None:
            container.restarts += 1
        log = self.directory / f"{container.name}.log"
        try:
            with log.open("ab") as output:
                container.process = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=container.spec.get("workingDir") or self.directory,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        except OSError as error:
            self._terminated(container, 128, "ContainerCannotRun", str(error))
            return True
        container.started_at, container.finished_at = now(), None
        container.exit_code, container.waiting, container.message, container.reason = None, None, "", ""
        container.env = env
        started = time.monotonic()
        container.probes = {
            kind: Probe(
                container.spec[key], due=started + float(container.spec[key].get("initialDelaySeconds", 0))
            )
            for kind, key in (("readiness", "readinessProbe"), ("liveness", "livenessProbe"))
            if key in container.spec
        }
        container.ready = "readiness" not in container.probes
        return True

    # -- probes ---------------------------------------------------------------------------

    def _probe(self) -> bool:
        """Run the probes that are due; True when a container's readiness changed or it was killed."""
        changed = False
        for container in self.containers:
            if not container.running:
                continue
            for kind, probe in list(container.probes.items()):
                if time.monotonic() < probe.due:
                    continue
                passed = self._passes(container, probe)
                probe.due = time.monotonic() + probe.period
                if passed:
                    probe.failures, probe.successes = 0, probe.successes + 1
                else:
                    probe.failures, probe.successes = probe.failures + 1, 0
                threshold = int(probe.spec.get("failureThreshold", 3))
                if kind == "readiness":
                    ready = container.ready
                    if passed and probe.successes >= int(probe.spec.get("successThreshold", 1)):
                        ready = True
                    elif not passed and probe.failures >= threshold:
                        ready = False
                    changed |= ready != container.ready
                    container.ready = ready
                elif not passed and probe.failures >= threshold:
                    # As a kubelet does: kill the container; the restart policy decides what next.
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(container.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
                    container.process.wait(timeout=5)  # type: ignore[union-attr]
                    changed |= self._reap()
                    break
        return changed

    def _passes(self, container: Container, probe: Probe) -> bool:
        spec = probe.spec
        if "httpGet" in spec:
            action = spec["httpGet"]
            port = action["port"]
            if isinstance(port, str):
                named = {p.get("name"): p["containerPort"] for p in container.spec.get("ports", [])}
                port = named.get(port, port)
            url = f"http://127.0.0.1:{port}{action.get('path', '/')}"
            try:
                return 200 <= httpx.get(url, timeout=probe.timeout).status_code < 400
            except httpx.HTTPError:
                return False
        if "exec" in spec:
            try:
                done = subprocess.run(
                    spec["exec"]["command"], env=container.env, capture_output=True, timeout=probe.timeout
                )
            except (OSError, subprocess.TimeoutExpired):
                return False
            return done.returncode == 0
        return True  # a probe kind this node does not run (tcpSocket, grpc) passes

    def _reap(self) -> bool:
        changed = False
        for container in self.containers:
            if container.process is not None and container.process.poll() is not None:
                code = container.process.returncode
                container.process = None
                self._terminated(container, code, "Completed" if code == 0 else "Error", None)
                changed = True
        return changed

    def _terminated(self, container: Container, code: int, reason: str, message: str | None) -> None:
        container.exit_code = 128 - code if code < 0 else code  # a signal -N reads as 128+N
        container.reason, container.finished_at = reason, now()
        container.started_at = container.started_at or container.finished_at
        if message is None:
            message = self._termination_message(container)
        container.message = message
        container.ready, container.probes = False, {}
        container.last_terminated = {
            "exitCode": container.exit_code,
            "reason": container.reason,
            "message": container.message,
            "startedAt": container.started_at,
            "finishedAt": container.finished_at,
        }
        if self._may_restart(container) and not self._main_done():
            backoff = min(0.5 * 2**container.restarts, 4.0)
            container.next_start = time.monotonic() + backoff
            container.waiting = ("CrashLoopBackOff", f"back-off {backoff}s restarting failed container")

    def _termination_message(self, container: Container) -> str:
        text = ""
        if container.termination_file is not None and container.termination_file.exists():
            text = container.termination_file.read_text(errors="replace")[:4096]
        policy = container.spec.get("terminationMessagePolicy", "File")
        if not text and policy == "FallbackToLogsOnError" and container.exit_code != 0:
            log = self.directory / f"{container.name}.log"
            lines = log.read_text(errors="replace").splitlines()[-80:] if log.exists() else []
            text = "\n".join(lines)[-2048:]
        return text

    def _main_done(self) -> bool:
        """True once a run-to-completion pod's main containers have all finished for good."""
        if self.restart_policy == "Always":
            return False
        mains = [c for c in self.containers if not c.init]
        return all(
            c.exit_code is not None and not c.running and (self.restart_policy == "Never" or c.exit_code == 0)
            for c in mains
        )

    def _finished(self, regular_inits: list[Container]) -> bool:
        if self.restart_policy == "Always":
            return False
        failed_init = any(
            c.exit_code not in (None, 0) and self.restart_policy == "Never" for c in regular_inits
        )
        return failed_init or self._main_done()

    def _kill_all(self, grace: float) -> None:
        alive = [c for c in self.containers if c.running]
        for container in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(container.process.pid, signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + grace
        for container in alive:
            process = container.process
            if process is None:
                continue
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self._reap_after_kill()

    def _reap_after_kill(self) -> None:
        for container in self.containers:
            if container.process is not None and container.process.poll() is not None:
                code = container.process.returncode
                container.process = None
                container.exit_code = 128 - code if code < 0 else code
                container.reason = "Completed" if code == 0 else "Error"
                container.finished_at = now()
                container.message = self._termination_message(container)
                container.waiting = None

    # -- env and command ------------------------------------------------------------------

    def _resolve(self, client: httpx.Client, container: Container) -> tuple[list[str], dict[str, str]]:
        spec = container.spec
        command = [*spec.get("command", []), *spec.get("args", [])]
        if not spec.get("command"):
            raise ConfigError(
                f"container {container.name} has no command; the process node cannot run an image"
            )
        values: dict[str, str] = {}
        for source in spec.get("envFrom", []):
            values.update(self._env_from(client, source))
        for variable in spec.get("env", []):
            values[variable["name"]] = self._env_value(client, variable, values)
        path = spec.get("terminationMessagePath", "/dev/termination-log")
        mapped = self.directory / f"{container.name}.termination-log"
        mapped.write_text("")
        container.termination_file = mapped
        mounts = {path: str(mapped), **self._claim_mounts(container)}

        def bind(text: str) -> str:
            for inside, outside in mounts.items():
                text = text.replace(inside, outside)
            return text

        argv = [bind(VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), arg)) for arg in command]
        env = {**os.environ, **{k: bind(v) for k, v in values.items()}}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("HOSTNAME", self.name)
        return argv, env

    def _claim_mounts(self, container: Container) -> dict[str, str]:
        """The container's PersistentVolumeClaim mounts: mount path -> the claim's directory."""
        claims = {
            volume["name"]: volume["persistentVolumeClaim"]["claimName"]
            for volume in self.pod["spec"].get("volumes", [])
            if "persistentVolumeClaim" in volume
        }
        mounts: dict[str, str] = {}
        for mount in container.spec.get("volumeMounts", []):
            if mount["name"] in claims:
                directory = self.node.claim_directory(self.namespace, claims[mount["name"]])
                mounts[mount["mountPath"]] = str(directory)
        return mounts

    def _env_value(self, client: httpx.Client, variable: Json, known: dict[str, str]) -> str:
        if "value" in variable:
            return VARIABLE.sub(lambda m: known.get(m.group(1), m.group(0)), str(variable["value"]))
        source = variable.get("valueFrom", {})
        if "secretKeyRef" in source:
            return self._key(client, "secrets", source["secretKeyRef"], decode=True)
        if "configMapKeyRef" in source:
            return self._key(client, "configmaps", source["configMapKeyRef"], decode=False)
        if "fieldRef" in source:
            field_path = source["fieldRef"]["fieldPath"]
            fields = {
                "metadata.name": self.name,
                "metadata.namespace": self.namespace,
                "metadata.uid": str(self.pod["metadata"]["uid"]),
                "spec.nodeName": self.node.name,
                "spec.serviceAccountName": str(self.pod["spec"].get("serviceAccountName", "default")),
                "status.podIP": "127.0.0.1",
                "status.hostIP": "127.0.0.1",
            }
            if field_path not in fields:
                raise ConfigError(f"fieldRef {field_path} is not supported by the process node")
            return fields[field_path]
        raise ConfigError(f"env {variable.get('name')}: unsupported valueFrom {sorted(source)}")

    def _fetch(self, client: httpx.Client, kind: str, name: str) -> Json | None:
        response = client.get(f"/api/v1/namespaces/{self.namespace}/{kind}/{name}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        found: Json = response.json()
        return found

    def _key(self, client: httpx.Client, kind: str, reference: Json, *, decode: bool) -> str:
        found = self._fetch(client, kind, reference["name"])
        singular = kind[:-1]
        if found is None:
            if reference.get("optional"):
                return ""
            raise ConfigError(f'{singular} "{reference["name"]}" not found')
        data = found.get("data") or {}
        if reference["key"] not in data:
            if reference.get("optional"):
                return ""
            raise ConfigError(
                f"couldn't find key {reference['key']} in {singular} {self.namespace}/{reference['name']}"
            )
        value = str(data[reference["key"]])
        return base64.b64decode(value).decode() if decode else value

    def _env_from(self, client: httpx.Client, source: Json) -> dict[str, str]:
        prefix = str(source.get("prefix", ""))
        for kind, key in (("secrets", "secretRef"), ("configmaps", "configMapRef")):
            if key in source:
                found = self._fetch(client, kind, source[key]["name"])
                if found is None:
                    if source[key].get("optional"):
                        return {}
                    raise ConfigError(f'{kind[:-1]} "{source[key]["name"]}" not found')
                data = found.get("data") or {}
                if kind == "secrets":
                    return {prefix + k: base64.b64decode(v).decode() for k, v in data.items()}
                return {prefix + k: str(v) for k, v in data.items()}
        return {}

    # -- status ---------------------------------------------------------------------------

    def _container_status(self, container: Container) -> Json:
        state: Json
        last: Json = {}
        terminated = {
            "exitCode": container.exit_code,
            "reason": container.reason,
            "message": container.message,
            "startedAt": container.started_at,
            "finishedAt": container.finished_at,
        }
        if container.running:
            state = {"running": {"startedAt": container.started_at}}
            if container.last_terminated is not None:
                last = {"terminated": container.last_terminated}
        elif container.waiting is not None:
            state = {"waiting": {"reason": container.waiting[0], "message": container.waiting[1]}}
            if container.exit_code is not None:
                last = {"terminated": terminated}
        else:
            state = {"terminated": terminated}
        status: Json = {
            "name": container.name,
            "image": container.spec.get("image", ""),
            "imageID": "",
            "ready": container.running and container.ready,
            "started": container.running,
            "restartCount": container.restarts,
            "state": state,
            "lastState": last,
        }
        return status

    def _phase(self) -> str:
        mains = [c for c in self.containers if not c.init]
        if any(c.exit_code not in (None, 0) and not c.sidecar and c.init for c in self.containers) and (
            self.restart_policy == "Never"
        ):
            return "Failed"
        if self._main_done():
            return "Succeeded" if all(c.exit_code == 0 for c in mains) else "Failed"
        if any(c.started_at is not None for c in mains):
            return "Running"
        return "Pending"

    def _report(self, client: httpx.Client) -> None:
        mains = [c for c in self.containers if not c.init]
        inits = [c for c in self.containers if c.init]
        initialized = all(c.exit_code == 0 or (c.sidecar and c.running) for c in inits)
        ready = all(c.running and c.ready for c in self.containers if not c.init or c.sidecar)
        stamp = now()

        def condition(kind: str, value: bool) -> Json:
            return {"type": kind, "status": "True" if value else "False", "lastTransitionTime": stamp}

        status = {
            "phase": self._phase(),
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.pod.get("status", {}).get("startTime") or stamp,
            "conditions": [
                condition("PodScheduled", True),
                condition("Initialized", initialized),
                condition("ContainersReady", ready),
                condition("Ready", ready),
            ],
            "containerStatuses": [self._container_status(c) for c in mains],
            "initContainerStatuses": [self._container_status(c) for c in inits],
        }
        path = f"/api/v1/namespaces/{self.namespace}/pods/{self.name}/status"
        with contextlib.suppress(httpx.HTTPError):
            client.patch(path, content=json.dumps({"status": status}), headers=MERGE_PATCH)


class ProcessNode:
    """Registers a Node, binds pending pods to it and runs them as local processes."""

    def __init__(self, plane: ControlPlane, name: str = "sapphire-process-node") -> None:
        self.plane = plane
        self.name = name
        self.directory = Path(tempfile.mkdtemp(prefix="sapphire-node-"))
        self.runners: dict[str, PodRunner] = {}
        self._deleting: set[str] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watcher = threading.Thread(target=self._watch_forever, name="process-node", daemon=True)

    def start(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux"},
            },
        }
        capacity = {"cpu": "64", "memory": "256Gi", "pods": "1000"}
        with self.plane.client() as client:
            response = client.post("/api/v1/nodes", json=node)
            if response.status_code not in (201, 409):
                response.raise_for_status()
            status = {
                "capacity": capacity,
                "allocatable": capacity,
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "process node",
                     "lastHeartbeatTime": now(), "lastTransitionTime": now()},
                ],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "nodeInfo": {"kubeletVersion": "process-node", "operatingSystem": "linux",
                             "architecture": "amd64", "containerRuntimeVersion": "process://"},
            }  # fmt: skip
            client.patch(
                f"/api/v1/nodes/{self.name}/status",
                content=json.dumps({"status": status}),
                headers=MERGE_PATCH,
            ).raise_for_status()
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            runners = list(self.runners.values())
        for runner in runners:
            runner.request_stop(grace_seconds=2)
        for runner in runners:
            runner.stopped.wait(timeout=15)
        self._watcher.join(timeout=10)

    def claim_directory(self, namespace: str, claim: str) -> Path:
        """The directory that plays PersistentVolumeClaim ``claim`` of ``namespace`` (created on
        first use, kept while the node runs: a claim outlives its pods)."""
        directory = self.directory / "claims" / namespace / claim
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def log_of(self, namespace: str, pod: str, container: str) -> str:
        """What a container has written so far (the ``kubectl logs`` of this node)."""
        for runner in list(self.runners.values()):
            if runner.namespace == namespace and runner.name == pod:
                path = runner.directory / f"{container}.log"
                return path.read_text(errors="replace") if path.exists() else ""
        return ""

    # -- watching -------------------------------------------------------------------------

    def _watch_forever(self) -> None:
        while not self._stop.is_set():
            try:
                with self.plane.client(timeout=60) as client:
                    listing = client.get("/api/v1/pods")
                    listing.raise_for_status()
                    body = listing.json()
                    for pod in body["items"]:
                        self._handle(client, "ADDED", pod)
                    self._watch(client, str(body["metadata"]["resourceVersion"]))
            except (httpx.HTTPError, ValueError, KeyError):
                self._stop.wait(0.5)

    def _watch(self, client: httpx.Client, version: str) -> None:
        params = {
            "watch": "1",
            "resourceVersion": version,
            "timeoutSeconds": "30",
            "allowWatchBookmarks": "true",
        }
        with client.stream("GET", "/api/v1/pods", params=params) as stream:
            for line in stream.iter_lines():
                if self._stop.is_set():
                    return
                if not line:
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    return  # e.g. 410 Gone: relist
                if event["type"] != "BOOKMARK":
                    self._handle(client, event["type"], event["object"])

    def _handle(self, client: httpx.Client, kind: str, pod: Json) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        uid = str(meta["uid"])
        namespace, name = meta["namespace"], meta["name"]
        with self._lock:
            runner = self.runners.get(uid)
        if kind == "DELETED":
            if runner is not None:
                runner.request_stop(grace_seconds=0)
            return
        if not spec.get("nodeName"):
            if meta.get("deletionTimestamp") is None:
                binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                           "target": {"apiVersion": "v1", "kind": "Node", "name": self.name}}  # fmt: skip
                client.post(f"/api/v1/namespaces/{namespace}/pods/{name}/binding", json=binding)
            return
        if spec["nodeName"] != self.name:
            return
        if meta.get("deletionTimestamp") is not None:
            with self._lock:
                if uid in self._deleting:
                    return
                self._deleting.add(uid)
            grace = float(
                meta.get("deletionGracePeriodSeconds") or spec.get("terminationGracePeriodSeconds", 30)
            )
            threading.Thread(target=self._finish_deletion, args=(runner, pod, grace), daemon=True).start()
            return
        if runner is None and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            directory = self.directory / namespace / f"{name}-{uid[:8]}"
            directory.mkdir(parents=True, exist_ok=True)
            runner = PodRunner(node=self, pod=pod, directory=directory)
            with self._lock:
                self.runners[uid] = runner
            runner.start()

    def _finish_deletion(self, runner: PodRunner | None, pod: Json, grace: float) -> None:
        """Stop the containers, then confirm the deletion as a kubelet does (grace period 0)."""
        if runner is not None:
            runner.request_stop(grace_seconds=grace)
            runner.stopped.wait(timeout=grace + 15)
        meta = pod["metadata"]
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                "preconditions": {"uid": meta["uid"]}}  # fmt: skip
        with self.plane.client() as client:
            client.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", json=body)
