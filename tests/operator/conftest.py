"""Fixtures for the operator's end-to-end tests: the real operator, as its own ServiceAccount."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support import kube
from tests.support import operator as operator_support

AGENT_TOKEN_SECRET = "sapphire-agent-token"


@pytest.fixture(scope="session")
def operator_roles(control_plane: kube.ControlPlane, installed_crds: list[str]) -> None:
    operator_support.install_cluster_roles(control_plane)


@pytest.fixture
def start_operator(
    control_plane: kube.ControlPlane, namespace: str, operator_roles: None
) -> Iterator[Callable[..., operator_support.OperatorProcess]]:
    """Start ``sapphire operator run`` in the test's namespace with least-privilege RBAC."""
    kubeconfig = operator_support.grant_operator(control_plane, namespace)
    started: list[operator_support.OperatorProcess] = []

    def start(**env: str) -> operator_support.OperatorProcess:
        process = operator_support.OperatorProcess(
            kubeconfig=kubeconfig, namespace=namespace, env=env
        ).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def agent_token(control_plane: kube.ControlPlane, namespace: str) -> None:
    control_plane.kubectl(
        "create",
        "secret",
        "generic",
        AGENT_TOKEN_SECRET,
        "--from-literal=token=agent-secret-token",
        "-n",
        namespace,
    )
