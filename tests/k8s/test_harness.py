"""The test control plane and its process node behave like a small real cluster."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import kube, processes

pytestmark = pytest.mark.k8s

PYTHON = sys.executable


def pod(
    name: str, *containers: dict[str, object], restart: str = "Never", **spec: object
) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": restart, "containers": list(containers), **spec},
    }


def container(name: str, script: str, **extra: object) -> dict[str, object]:
    return {"name": name, "image": "ignored", "command": [PYTHON, "-c", textwrap.dedent(script)], **extra}


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def terminated(status: kube.Json, name: str) -> kube.Json | None:
    for entry in status.get("containerStatuses") or []:
        if entry["name"] == name and "terminated" in entry["state"]:
            return dict(entry["state"]["terminated"])
    return None


def test_the_server_reports_a_stamped_version(control_plane: kube.ControlPlane) -> None:
    version = kube.server_version(control_plane)
    assert version == kube.kubernetes_version()
    output = control_plane.kubectl("version", "-o", "json").stdout
    assert f'"gitVersion": "{version}"' in output


def test_a_deployment_becomes_a_running_ready_pod(control_plane: kube.ControlPlane, namespace: str) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sleeper"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "sleeper"}},
            "template": {
                "metadata": {"labels": {"app": "sleeper"}},
                "spec": {"containers": [container("main", "import time; time.sleep(3600)")]},
            },
        },
    }
    kube.apply(control_plane, deployment, namespace)
    ready = kube.wait_for(
        control_plane,
        f"/apis/apps/v1/namespaces/{namespace}/deployments/sleeper",
        lambda d: d.get("status", {}).get("readyReplicas") == 1,
        what="the Deployment to have one ready replica",
    )
    assert ready["status"]["availableReplicas"] == 1
    replicasets = control_plane.kubectl("get", "rs", "-n", namespace, "-o", "name").stdout.split()
    assert len(replicasets) == 1
    pods = control_plane.kubectl(
        "get", "pods", "-n", namespace, "-o", "jsonpath={.items[0].status.phase}"
    ).stdout
    assert pods == "Running"


def test_a_failing_command_gives_failed_and_its_exit_code(
    control_plane: kube.ControlPlane, namespace: str
) -> None:
    kube.apply(control_plane, pod("fails", container("main", "import sys; sys.exit(3)")), namespace)
    found = kube.wait_for(
        control_plane, pod_path(namespace, "fails"), lambda p: p.get("status", {}).get("phase") == "Failed"
    )
    state = terminated(found["status"], "main")
    assert state is not None
    assert state["exitCode"] == 3
    assert state["reason"] == "Error"


def test_a_sidecar_that_never_exits_does_not_hide_the_main_containers_end(
    control_plane: kube.ControlPlane, namespace: str
) -> None:
    sidecar = container("proxy", "import time; time.sleep(3600)", restartPolicy="Always")
    main = container(
        "main",
        "open('/dev/termination-log', 'w').write('{\"to\": \"head\"}')",
        terminationMessagePath="/dev/termination-log",
    )
    kube.apply(control_plane, pod("migrate", main, initContainers=[sidecar]), namespace)
    found = kube.wait_for(
        control_plane,
        pod_path(namespace, "migrate"),
        lambda p: p.get("status", {}).get("phase") == "Succeeded",
    )
    state = terminated(found["status"], "main")
    assert state is not None
    assert state["exitCode"] == 0
    assert state["message"] == '{"to": "head"}'
    assert not Path("/dev/termination-log").exists(), "the node must map the path, not write the host's /dev"


def test_a_secret_key_ref_reaches_the_process(control_plane: kube.ControlPlane, namespace: str) -> None:
    control_plane.kubectl(
        "create", "secret", "generic", "db", "--from-literal=url=postgresql://x:s3cret@db/x", "-n", namespace
    )
    env = [
        {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    script = """
        import os, sys
        ok = os.environ["DATABASE_URL"].endswith("s3cret@db/x") and os.environ["POD"] == "env"
        sys.exit(0 if ok else 9)
    """
    kube.apply(control_plane, pod("env", container("main", script, env=env)), namespace)
    found = kube.wait_for(
        control_plane,
        pod_path(namespace, "env"),
        lambda p: p.get("status", {}).get("phase") in ("Succeeded", "Failed"),
    )
    assert found["status"]["phase"] == "Succeeded"


def test_a_missing_secret_waits_then_starts_when_it_appears(
    control_plane: kube.ControlPlane, namespace: str
) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "late", "key": "token"}}}]
    kube.apply(control_plane, pod("late", container("main", "pass", env=env)), namespace)

    def waiting_for_config(p: kube.Json) -> bool:
        statuses = p.get("status", {}).get("containerStatuses") or []
        return any(
            s["state"].get("waiting", {}).get("reason") == "CreateContainerConfigError" for s in statuses
        )

    kube.wait_for(control_plane, pod_path(namespace, "late"), waiting_for_config)
    control_plane.kubectl("create", "secret", "generic", "late", "--from-literal=token=t", "-n", namespace)
    kube.wait_for(
        control_plane, pod_path(namespace, "late"), lambda p: p.get("status", {}).get("phase") == "Succeeded"
    )


def test_deleting_a_pod_kills_its_process(
    control_plane: kube.ControlPlane, namespace: str, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(3600)"
    kube.apply(control_plane, pod("victim", container("main", script)), namespace)
    kube.wait_for(
        control_plane, pod_path(namespace, "victim"), lambda p: p.get("status", {}).get("phase") == "Running"
    )
    pid = int(pid_file.read_text())
    assert Path(f"/proc/{pid}").exists()
    control_plane.kubectl("delete", "pod", "victim", "-n", namespace, "--grace-period=5", "--timeout=30s")
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_a_deployment_pod_is_restarted_after_it_exits(
    control_plane: kube.ControlPlane, namespace: str
) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "crasher"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "crasher"}},
            "template": {
                "metadata": {"labels": {"app": "crasher"}},
                "spec": {"containers": [container("main", "import sys; sys.exit(1)")]},
            },
        },
    }
    kube.apply(control_plane, deployment, namespace)

    def restarted(listing: kube.Json) -> bool:
        items = listing.get("items") or []
        return any(
            s["restartCount"] >= 2 for p in items for s in p.get("status", {}).get("containerStatuses", [])
        )

    kube.wait_for(control_plane, f"/api/v1/namespaces/{namespace}/pods", restarted, what="two restarts")


def test_kubectl_apply_get_and_auth_can_i_work(control_plane: kube.ControlPlane, namespace: str) -> None:
    control_plane.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    control_plane.kubectl(
        "create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", namespace
    )
    control_plane.kubectl(
        "create",
        "rolebinding",
        "reader",
        "--role=pod-reader",
        f"--serviceaccount={namespace}:reader",
        "-n",
        namespace,
    )
    who = f"system:serviceaccount:{namespace}:reader"
    can = control_plane.kubectl("auth", "can-i", "list", "pods", "-n", namespace, f"--as={who}", check=False)
    cannot = control_plane.kubectl(
        "auth", "can-i", "delete", "pods", "-n", namespace, f"--as={who}", check=False
    )
    assert (can.stdout.strip(), cannot.stdout.strip()) == ("yes", "no")
    # The same answer when acting with the ServiceAccount's own token.
    config = control_plane.serviceaccount_kubeconfig(namespace, "reader")
    listed = control_plane.kubectl("get", "pods", "-n", namespace, kubeconfig=config, check=False)
    denied = control_plane.kubectl("get", "secrets", "-n", namespace, kubeconfig=config, check=False)
    assert listed.returncode == 0, listed.stderr
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()


def test_probes_gate_readiness_and_a_failing_liveness_probe_restarts_the_container(
    control_plane: kube.ControlPlane, namespace: str, tmp_path: Path
) -> None:
    flag = tmp_path / "ready"
    # Ready only once the flag file exists (exec probe); alive only while the flag says so
    # (httpGet probe on the container's named port, answered by the container itself).
    script = f"""
        import http.server, pathlib, sys
        flag = pathlib.Path({str(flag)!r})
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                alive = not flag.exists() or flag.read_text() != "die"
                self.send_response(200 if alive else 500)
                self.end_headers()
            def log_message(self, *args):
                pass
        http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
    port = processes.free_port()
    probed = container(
        "main",
        script,
        args=[str(port)],
        ports=[{"name": "health", "containerPort": port}],
        readinessProbe={"exec": {"command": ["test", "-f", str(flag)]}, "periodSeconds": 1},
        livenessProbe={
            "httpGet": {"path": "/healthz", "port": "health"},
            "periodSeconds": 1,
            "failureThreshold": 2,
        },
    )
    kube.apply(control_plane, pod("probed", probed, restart="Always"), namespace)
    path = pod_path(namespace, "probed")

    def main_status(body: kube.Json) -> kube.Json:
        return next(iter(body.get("status", {}).get("containerStatuses") or [{}]))

    running = kube.wait_for(
        control_plane, path, lambda b: "running" in main_status(b).get("state", {}), what="running"
    )
    assert main_status(running)["ready"] is False  # running, but its readiness probe fails
    flag.write_text("ok")
    kube.wait_for(control_plane, path, lambda b: main_status(b).get("ready") is True, what="ready")

    flag.write_text("die")
    restarted = kube.wait_for(
        control_plane, path, lambda b: main_status(b).get("restartCount", 0) >= 1, what="a liveness restart"
    )
    assert main_status(restarted)["lastState"]["terminated"]["exitCode"] == 137  # killed, as a kubelet does
    flag.write_text("ok")
    kube.wait_for(
        control_plane,
        path,
        lambda b: main_status(b).get("ready") is True and "running" in main_status(b).get("state", {}),
        what="ready again after the restart",
    )
