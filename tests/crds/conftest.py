"""Fixtures for the CRD tests: paths of the committed files, and the CRDs installed once per session."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import sapphire
from sapphire.resources import crdgen

if TYPE_CHECKING:  # the harness is only needed, and imported, by the k8s tests
    from tests.support import kube

REPOSITORY = Path(__file__).resolve().parents[2]
CRDS = REPOSITORY / "crds"
EXAMPLES = REPOSITORY / "manifests" / "examples"
INVALID = Path(__file__).resolve().parent / "invalid"


@pytest.fixture(scope="session")
def installed_crds(control_plane: kube.ControlPlane) -> list[str]:
    """Apply ``crds/`` as a new user would, and wait until every CRD is Established.

    Returns the CRD names. The CRDs stay installed for the session: they are cluster-scoped
    and every test works in its own namespace.
    """
    control_plane.kubectl("apply", "-f", str(CRDS))
    names = [resource.crd_name for resource in crdgen.RESOURCES]
    for name in names:
        control_plane.kubectl(
            "wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s", timeout=90
        )
    # Refresh kubectl's discovery cache: it may predate the CRDs, and `kubectl get sapphire`
    # expands the category from that cache.
    control_plane.kubectl("api-resources", f"--api-group={sapphire.GROUP}")
    return names
