"""The operator's credentials refresh: its ServiceAccount token is rotated mid-run and the old
one revoked, and the operator keeps working, its own client and kopf's alike.

The kubeconfig authenticates through an exec plugin, as GKE's does: the plugin prints whatever
token is in a file, so the test rotates the credential by writing a new token there. Each
token is bound to a Secret; deleting the Secret revokes the token on the API server.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.support import kube, processes
from tests.support import operator as operator_support

pytestmark = pytest.mark.k8s

StartOperator = Callable[..., operator_support.OperatorProcess]
GROUP_PATH = "/apis/trading.sapphire-ai.com/v1alpha1"
PLUGIN = """
import json, sys
token = open(sys.argv[1]).read().strip()
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                  "status": {"token": token}}))
"""


def bound_token(plane: kube.ControlPlane, namespace: str, secret: str) -> str:
    """A token of the operator's ServiceAccount that lives as long as ``secret`` does."""
    plane.kubectl("create", "secret", "generic", secret, "-n", namespace)
    return plane.kubectl(
        "create", "token", operator_support.SERVICE_ACCOUNT, "-n", namespace,
        "--bound-object-kind=Secret", f"--bound-object-name={secret}", "--duration=1h",
    ).stdout.strip()  # fmt: skip


def exec_kubeconfig(plane: kube.ControlPlane, namespace: str, token_file: Path) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="sapphire-exec-"))
    plugin = directory / "plugin.py"
    plugin.write_text(PLUGIN)
    path = directory / "kubeconfig"
    kube.write_kubeconfig(path, server=plane.server, token="unused", user="operator", namespace=namespace)
    config = yaml.safe_load(path.read_text())
    config["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": [str(plugin), str(token_file)],
        }
    }
    path.write_text(yaml.safe_dump(config))
    return path


def status_code_with(plane: kube.ControlPlane, token: str, path: str) -> int:
    with plane.client(token=token) as client:
        return client.get(path).status_code


def test_a_rotated_and_revoked_token_is_replaced_and_the_operator_keeps_working(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    agent_token: None,
) -> None:
    # The fixture has created the operator's ServiceAccount and RoleBinding; the operator of
    # this test is started on the exec-plugin kubeconfig instead of the fixture's.
    token_file = Path(tempfile.mkdtemp(prefix="sapphire-token-")) / "token"
    first = bound_token(control_plane, namespace, "operator-credential-1")
    token_file.write_text(first)
    kubeconfig = exec_kubeconfig(control_plane, namespace, token_file)
    operator = operator_support.OperatorProcess(kubeconfig=kubeconfig, namespace=namespace).start()
    try:
        collection = f"{GROUP_PATH}/namespaces/{namespace}/tradingagents"
        kube.apply(control_plane, operator_support.sleeping_agent("before"), namespace)
        kube.wait_for(
            control_plane, f"{collection}/before", lambda b: b.get("status", {}).get("phase") == "Running"
        )

        token_file.write_text(bound_token(control_plane, namespace, "operator-credential-2"))
        control_plane.kubectl("delete", "secret", "operator-credential-1", "-n", namespace)
        processes.wait_until(
            lambda: status_code_with(control_plane, first, collection) == 401,
            timeout=30,
            what="the first token to be revoked",
        )

        # Its own client (the Deployment's apply, the status patch) and kopf's watch both work on.
        kube.apply(control_plane, operator_support.sleeping_agent("after"), namespace)
        body = kube.wait_for(
            control_plane, f"{collection}/after", lambda b: b.get("status", {}).get("phase") == "Running"
        )
        assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
        control_plane.kubectl("delete", "deployment", "agent-before", "-n", namespace, "--wait=false")
        kube.wait_for(
            control_plane,
            f"/apis/apps/v1/namespaces/{namespace}/deployments/agent-before",
            lambda d: True,
            timeout=30,
            what="the resync to recreate a Deployment after the rotation",
        )
        assert "Traceback" not in operator.output(), operator.output()[-3000:]
    finally:
        operator.stop()
