"""Rendering of the kustomize trees with the harness's kubectl (its built-in kustomize)."""

from __future__ import annotations

import collections
import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import kube

MANIFESTS = kube.REPOSITORY / "manifests"
BASE = MANIFESTS / "base"
CRDS_PHASE = BASE / "crds"
OVERLAYS = {"base": BASE, "dev": MANIFESTS / "overlays" / "dev", "gke": MANIFESTS / "overlays" / "gke"}

Json = dict[str, Any]


@functools.cache
def kubectl_binary() -> str:
    """The harness's kubectl (same version as the control plane), or one on PATH."""
    if not os.environ.get("SAPPHIRE_TEST_KUBECONFIG"):
        candidate = kube.cached_binaries() / "kubectl"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("no kubectl: run `make testenv`")
    return found


@functools.cache
def _render(path: Path) -> tuple[Json, ...]:
    result = subprocess.run(
        [kubectl_binary(), "kustomize", str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {path} failed: {result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(path: Path) -> list[Json]:
    """``kubectl kustomize path`` as a list of objects (a fresh copy each call)."""
    return yaml.safe_load(yaml.safe_dump(list(_render(path))))  # type: ignore[no-any-return]


def kinds(documents: list[Json]) -> dict[str, int]:
    return dict(sorted(collections.Counter(doc["kind"] for doc in documents).items()))


def find(documents: list[Json], kind: str, name: str) -> Json:
    """The one object of ``kind`` whose name is ``name`` (or starts with ``name-`` + a hash)."""
    matches = [
        doc
        for doc in documents
        if doc["kind"] == kind
        and (doc["metadata"]["name"] == name or doc["metadata"]["name"].startswith(f"{name}-"))
    ]
    assert len(matches) == 1, f"{kind}/{name}: {[m['metadata']['name'] for m in matches]}"
    return matches[0]


def container(pod_spec: Json, name: str, *, init: bool = False) -> Json:
    containers = pod_spec["initContainers" if init else "containers"]
    return next(c for c in containers if c["name"] == name)


def env(container_spec: Json) -> dict[str, Json]:
    return {item["name"]: item for item in container_spec.get("env", [])}


@pytest.fixture(params=sorted(OVERLAYS), ids=str)
def tree(request: pytest.FixtureRequest) -> str:
    """Each deployable kustomization: the base alone, and the two overlays."""
    return str(request.param)
