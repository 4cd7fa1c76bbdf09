"""A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager.

The binaries come, in this order, from:

1. ``SAPPHIRE_TEST_KUBECONFIG``: an existing cluster (kind, k3d...); nothing is started.
2. ``KUBEBUILDER_ASSETS``: the envtest convention, a folder with ``etcd``, ``kube-apiserver``
   and optionally ``kube-controller-manager`` (and ``kubectl``, else the one on PATH).
3. ``${XDG_CACHE_HOME:-~/.cache}/sapphire/testenv/<version>/``, built once by
   ``tests/testenv/build.sh`` (``make testenv``) from the Go module proxy.

The API server authenticates with static bearer tokens (the admin is in ``system:masters``)
and with ServiceAccount tokens, and authorizes with RBAC, so tests can run a component as
its own ServiceAccount and see exactly the permissions a real cluster would grant.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import processes

REPOSITORY = Path(__file__).resolve().parents[2]
TESTENV = REPOSITORY / "tests" / "testenv"
CONTROLLERS = "garbagecollector,deployment,replicaset,serviceaccount,serviceaccount-token,namespace"

Json = dict[str, Any]


def kubernetes_version() -> str:
    """The Kubernetes release the harness builds, read from tests/testenv/go.mod."""
    match = re.search(r"^require k8s\.io/kubernetes (v\S+)", (TESTENV / "go.mod").read_text(), re.M)
    if match is None:
        raise RuntimeError("tests/testenv/go.mod does not require k8s.io/kubernetes")
    return match.group(1)


def cached_binaries() -> Path:
    """The folder holding the control-plane binaries, building them once when missing."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        return Path(assets)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = cache / "sapphire" / "testenv" / kubernetes_version()
    if not (folder / "kube-apiserver").exists():
        subprocess.run([str(TESTENV / "build.sh")], check=True)
    return folder


@dataclass
class ControlPlane:
    """A running (or borrowed) control plane, with an admin kubeconfig and kubectl."""

    kubeconfig: Path
    server: str
    token: str
    kubectl_binary: str
    directory: Path | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    owns_nodes: bool = True
    """False for a borrowed cluster: it has real kubelets, so no process node is started."""
    node: Any = None
    """The process node (tests.support.node.ProcessNode) playing the kubelet, if any."""

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane; raise with its stderr when ``check`` fails."""
        result = subprocess.run(
            [self.kubectl_binary, "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def client(self, token: str | None = None, timeout: float = 30) -> httpx.Client:
        """An HTTP client for the API server (admin unless ``token`` is given)."""
        return httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {token or self.token}"},
            verify=False,
            timeout=timeout,
        )

    def serviceaccount_kubeconfig(self, namespace: str, name: str, *, hours: int = 2) -> Path:
        """A kubeconfig that authenticates as ``system:serviceaccount:<namespace>:<name>``."""
        token = self.kubectl("create", "token", name, "-n", namespace, f"--duration={hours}h").stdout.strip()
        path = Path(tempfile.mkdtemp(prefix="sapphire-sa-")) / f"{namespace}-{name}.kubeconfig"
        write_kubeconfig(
            path, server=self.server, token=token, user=f"{namespace}-{name}", namespace=namespace
        )
        return path

    def stop(self) -> None:
        for process in reversed(self.processes):
            processes.stop_process(process, grace=5)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


def write_kubeconfig(path: Path, *, server: str, token: str, user: str, namespace: str = "default") -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "sapphire-test", "cluster": {"server": server, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": user, "context": {"cluster": "sapphire-test", "user": user, "namespace": namespace}}
        ],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)


def _service_account_keys(directory: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / "sa.key"
    public = directory / "sa.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def _spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def _healthy(server: str, token: str, path: str) -> bool:
    response = httpx.get(
        f"{server}{path}",
        headers={"Authorization": f"Bearer {token}"},
        verify=False,
        timeout=2,
    )
    return response.status_code == 200


def start_control_plane() -> ControlPlane:
    """Start etcd, kube-apiserver and kube-controller-manager on loopback, in a temp folder."""
    borrowed = os.environ.get("SAPPHIRE_TEST_KUBECONFIG")
    if borrowed:
        return _borrowed_control_plane(Path(borrowed))
    binaries = cached_binaries()
    kubectl = str(binaries / "kubectl") if (binaries / "kubectl").exists() else shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError(f"no kubectl in {binaries} or on PATH")
    directory = Path(tempfile.mkdtemp(prefix="sapphire-kube-"))
    token = secrets.token_hex(16)
    (directory / "tokens.csv").write_text(f'{token},sapphire-admin,sapphire-admin,"system:masters"\n')
    sa_key, sa_pub = _service_account_keys(directory)
    etcd_port, etcd_peer, api_port = processes.free_port(), processes.free_port(), processes.free_port()
    server = f"https://127.0.0.1:{api_port}"
    plane = ControlPlane(
        kubeconfig=directory / "admin.kubeconfig",
        server=server,
        token=token,
        kubectl_binary=kubectl,
        directory=directory,
    )
    write_kubeconfig(plane.kubeconfig, server=server, token=token, user="sapphire-admin")
    try:
        plane.processes.append(
            _spawn(
                [
                    str(binaries / "etcd"),
                    f"--data-dir={directory / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                    f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                ],
                directory / "etcd.log",
            )
        )
        processes.wait_until(lambda: processes.port_open(etcd_port), timeout=30, what="etcd")
        plane.processes.append(
            _spawn(
                [
                    str(binaries / "kube-apiserver"),
                    f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                    f"--secure-port={api_port}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--cert-dir={directory / 'certs'}",
                    f"--token-auth-file={directory / 'tokens.csv'}",
                    "--authorization-mode=RBAC",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    f"--service-account-key-file={sa_pub}",
                    f"--service-account-signing-key-file={sa_key}",
                    "--service-cluster-ip-range=10.96.0.0/24",
                    "--allow-privileged=true",
                    "--enable-priority-and-fairness=false",
                    "--profiling=false",
                ],
                directory / "kube-apiserver.log",
            )
        )
        processes.wait_until(
            lambda: _healthy(server, token, "/readyz"),
            timeout=90,
            interval=0.2,
            what="kube-apiserver /readyz",
        )
        manager = binaries / "kube-controller-manager"
        if manager.exists():
            plane.processes.append(
                _spawn(
                    [
                        str(manager),
                        f"--kubeconfig={plane.kubeconfig}",
                        f"--controllers={CONTROLLERS}",
                        f"--service-account-private-key-file={sa_key}",
                        "--use-service-account-credentials=false",
                        "--leader-elect=false",
                        "--secure-port=0",
                        "--concurrent-gc-syncs=5",
                        "--concurrent-deployment-syncs=10",
                        "--concurrent-replicaset-syncs=10",
                    ],
                    directory / "kube-controller-manager.log",
                )
            )
        # The default ServiceAccount appearing proves the controller manager is working.
        processes.wait_until(
            lambda: (
                plane.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode
                == 0
            ),
            timeout=60,
            interval=0.2,
            what="the default ServiceAccount (kube-controller-manager)",
        )
    except BaseException:
        plane.stop()
        raise
    return plane


def _borrowed_control_plane(kubeconfig: Path) -> ControlPlane:
    config = yaml.safe_load(kubeconfig.read_text())
    context_name = config["current-context"]
    context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError("SAPPHIRE_TEST_KUBECONFIG is set but kubectl is not on PATH")
    return ControlPlane(
        kubeconfig=kubeconfig,
        server=cluster["server"],
        token=str(user.get("token", "")),
        kubectl_binary=kubectl,
        owns_nodes=False,
    )


def server_version(plane: ControlPlane) -> str:
    with plane.client() as client:
        return str(client.get("/version").json()["gitVersion"])


@contextlib.contextmanager
def fresh_namespace(plane: ControlPlane, prefix: str = "t") -> Iterator[str]:
    """A new namespace for one test; deleted (without waiting) afterwards."""
    name = f"{prefix}-{secrets.token_hex(4)}"
    plane.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def wait_for(
    plane: ControlPlane,
    path: str,
    predicate: Any,
    *,
    timeout: float = 60,
    what: str | None = None,
) -> Json:
    """Poll GET ``path`` until ``predicate(object)`` is true; return the object."""
    found: Json = {}
    deadline = time.monotonic() + timeout
    with plane.client() as client:
        while True:
            response = client.get(path)
            if response.status_code == 200:
                found = response.json()
                if predicate(found):
                    return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what or path}; last: {found}")
            time.sleep(0.1)


def apply(plane: ControlPlane, manifest: Mapping[str, Any] | str, namespace: str | None = None) -> str:
    """``kubectl apply`` a manifest given as YAML text or a mapping; return kubectl's output."""
    text = manifest if isinstance(manifest, str) else yaml.safe_dump(dict(manifest))
    args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
    return plane.kubectl(*args, input=text).stdout


def table_rows(output: str) -> list[dict[str, str]]:
    """``kubectl get``'s table as dicts, cut at the header's column offsets (cells may be empty)."""
    head, *lines = output.splitlines()
    starts = [match.start() for match in re.finditer(r"\S+", head)]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    names = head.split()
    return [
        {name: line[start:end].strip() for name, (start, end) in zip(names, bounds, strict=True)}
        for line in lines
    ]
