"""The manifests on a real kube-apiserver: server-side dry runs of every tree, and the
operator's RBAC asked of the API server itself (``kubectl auth can-i --as``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.manifests.conftest import BASE, CRDS_PHASE, OVERLAYS
from tests.support import kube

pytestmark = pytest.mark.k8s

OPERATOR = "system:serviceaccount:trading:sapphire-operator"


@pytest.fixture(scope="module")
def trading(control_plane: kube.ControlPlane, installed_crds: list[str]) -> Iterator[kube.ControlPlane]:
    """The first-install steps, for real: every CRD (the CRD phase, as manifests/README.md
    says), the `trading` namespace, and the operator's RBAC. A dry run cannot create a
    namespace for the objects in it, nor a kind for its objects."""
    control_plane.kubectl("apply", "-k", str(CRDS_PHASE))
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=sapphire",
        "--timeout=60s",
    )
    control_plane.kubectl("apply", "-f", str(BASE / "namespace.yaml"))
    control_plane.kubectl("apply", "-n", "trading", "-f", str(BASE / "operator-rbac.yaml"))
    yield control_plane
    control_plane.kubectl("delete", "namespace", "trading", "--wait=false", check=False)


@pytest.mark.parametrize("tree", sorted(OVERLAYS))
def test_a_server_side_dry_run_accepts_every_object(trading: kube.ControlPlane, tree: str) -> None:
    result = trading.kubectl("apply", "--dry-run=server", "-k", str(OVERLAYS[tree]), check=False)
    assert result.returncode == 0, result.stderr
    # Pod Security "restricted" (the namespace's warn label) would warn about any workload
    # that breaks it; the API server warns about deprecated fields too.
    assert "Warning" not in result.stderr, result.stderr
    assert result.stdout.count("(server dry run)") == len(
        [line for line in result.stdout.splitlines() if line]
    )


def test_the_restricted_pod_security_standard_is_really_checked(trading: kube.ControlPlane) -> None:
    """The dry runs' silence means something: a root container draws the warning."""
    deployment = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: rooted, namespace: trading}
spec:
  selector: {matchLabels: {app: rooted}}
  template:
    metadata: {labels: {app: rooted}}
    spec:
      containers: [{name: main, image: busybox}]
"""
    result = trading.kubectl("apply", "--dry-run=server", "-f", "-", input=deployment)
    assert "would violate PodSecurity" in result.stderr


def can_i(plane: kube.ControlPlane, verb: str, resource: str, namespace: str | None) -> bool:
    """``kubectl auth can-i`` as the operator; ``resource/sub`` asks about a subresource
    (kubectl would read ``TYPE/NAME`` otherwise)."""
    scope = ["-n", namespace] if namespace else ["--all-namespaces"]
    resource, _, subresource = resource.partition("/")
    extra = [f"--subresource={subresource}"] if subresource else []
    result = plane.kubectl("auth", "can-i", verb, resource, *extra, f"--as={OPERATOR}", *scope, check=False)
    answer = result.stdout.strip()
    assert answer in {"yes", "no"}, result.stderr
    return answer == "yes"


ALLOWED = [
    *((verb, "deployments.apps") for verb in ("get", "list", "watch", "create", "update", "patch", "delete")),
    *((verb, "pods") for verb in ("get", "list", "watch", "create", "delete")),
    ("create", "events"),
    ("patch", "events"),
    ("create", "events.events.k8s.io"),
    *(
        (verb, f"{plural}.trading.sapphire-ai.com")
        for plural in ("tradingagents", "migrationruns", "backtestruns")
        for verb in ("get", "list", "watch", "patch")
    ),
    *(
        (verb, f"{plural}.trading.sapphire-ai.com/status")
        for plural in ("tradingagents", "migrationruns", "backtestruns")
        for verb in ("get", "patch", "update")
    ),
    ("update", "tradingagents.trading.sapphire-ai.com/finalizers"),
    ("update", "migrationruns.trading.sapphire-ai.com/finalizers"),
    ("update", "backtestruns.trading.sapphire-ai.com/finalizers"),
    *((verb, "kopfpeerings.kopf.dev") for verb in ("get", "list", "watch", "patch")),
]

DENIED_IN_ITS_NAMESPACE = [
    *((verb, "secrets") for verb in ("get", "list", "watch", "create", "update", "patch", "delete")),
    ("create", "pods/exec"),
    ("get", "pods/log"),
    ("create", "pods/portforward"),
    ("update", "pods"),
    ("create", "serviceaccounts/token"),
    ("create", "serviceaccounts"),
    ("get", "configmaps"),
    ("create", "tradingagents.trading.sapphire-ai.com"),
    ("delete", "tradingagents.trading.sapphire-ai.com"),
    ("create", "migrationruns.trading.sapphire-ai.com"),
    ("delete", "migrationruns.trading.sapphire-ai.com"),
    ("create", "backtestruns.trading.sapphire-ai.com"),
    ("delete", "backtestruns.trading.sapphire-ai.com"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("bind", "roles.rbac.authorization.k8s.io"),
    ("escalate", "roles.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("impersonate", "serviceaccounts"),
    ("impersonate", "users"),
    ("impersonate", "groups"),
    ("create", "networkpolicies.networking.k8s.io"),
    ("delete", "namespaces"),
]

DENIED_CLUSTER_WIDE = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("list", "deployments.apps"),
    ("create", "deployments.apps"),
    ("create", "pods"),
    ("list", "tradingagents.trading.sapphire-ai.com"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("impersonate", "users"),
    ("create", "certificatesigningrequests.certificates.k8s.io"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("list", "namespaces"),
    ("create", "nodes/proxy"),
]


class TestOperatorRbac:
    @pytest.mark.parametrize(("verb", "resource"), ALLOWED, ids=lambda x: str(x))
    def test_it_can_do_its_job_in_its_namespace(
        self, trading: kube.ControlPlane, verb: str, resource: str
    ) -> None:
        assert can_i(trading, verb, resource, "trading")

    @pytest.mark.parametrize(("verb", "resource"), DENIED_IN_ITS_NAMESPACE, ids=lambda x: str(x))
    def test_it_cannot_read_secrets_exec_or_escalate_in_its_namespace(
        self, trading: kube.ControlPlane, verb: str, resource: str
    ) -> None:
        assert not can_i(trading, verb, resource, "trading")

    @pytest.mark.parametrize(("verb", "resource"), ALLOWED, ids=lambda x: str(x))
    def test_it_cannot_act_outside_its_namespace(
        self, trading: kube.ControlPlane, verb: str, resource: str
    ) -> None:
        for namespace in ("default", "kube-system"):
            assert not can_i(trading, verb, resource, namespace), namespace

    @pytest.mark.parametrize(("verb", "resource"), DENIED_CLUSTER_WIDE, ids=lambda x: str(x))
    def test_it_has_no_cluster_wide_rights(
        self, trading: kube.ControlPlane, verb: str, resource: str
    ) -> None:
        assert not can_i(trading, verb, resource, None)
