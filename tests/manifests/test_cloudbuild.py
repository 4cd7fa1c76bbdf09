"""cloudbuild.yaml, the seed's build-and-deploy entry point, cannot run here; it is read step
by step instead: build and push the one image, pin it, apply the gke overlay with kubectl."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.manifests.conftest import CRDS_PHASE, OVERLAYS
from tests.support import kube

CLOUDBUILD = kube.REPOSITORY / "cloudbuild.yaml"
DOCKER = "gcr.io/cloud-builders/docker"
KUSTOMIZE = "us-docker.pkg.dev/gcb-release/cloud-builders/kustomize"
KUBECTL = "gcr.io/cloud-builders/kubectl"
IMAGE = "${_IMAGE}"
CLUSTER_ENV = ["CLOUDSDK_COMPUTE_REGION=${_REGION}", "CLOUDSDK_CONTAINER_CLUSTER=${_CLUSTER}"]


def build() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CLOUDBUILD.read_text())
    return loaded


def steps() -> dict[str, dict[str, Any]]:
    return {step["id"]: step for step in build()["steps"]}


def relative(path: Any) -> str:
    return str(path.relative_to(kube.REPOSITORY))


def test_the_steps_run_in_order() -> None:
    assert list(steps()) == [
        "build",
        "push",
        "pin-image",
        "name-migration",
        "crds",
        "crds-established",
        "apply",
        "rollout-operator",
        "rollout-trader-api",
    ]


def test_it_builds_the_one_image_from_the_dockerfile_and_pushes_it() -> None:
    build_step, push = steps()["build"], steps()["push"]
    assert build_step["name"] == DOCKER
    assert build_step["args"] == [
        "build",
        f"--tag={IMAGE}:${{_TAG}}",
        f"--tag={IMAGE}:latest",
        "--file=Dockerfile",
        ".",
    ]
    assert push["name"] == DOCKER
    assert push["args"] == ["push", "--all-tags", IMAGE]
    assert build()["images"] == [f"{IMAGE}:${{_TAG}}", f"{IMAGE}:latest"]


def test_the_image_is_artifact_registry_and_the_tag_is_the_commit() -> None:
    substitutions = build()["substitutions"]
    assert substitutions["_IMAGE"] == "${_REGION}-docker.pkg.dev/${PROJECT_ID}/${_REPOSITORY}/sapphire"
    assert substitutions["_TAG"] == "${SHORT_SHA}"
    assert build()["options"]["dynamicSubstitutions"] is True
    used = set(re.findall(r"\$\{(_[A-Z]+)\}", CLOUDBUILD.read_text()))
    assert used <= set(substitutions), used - set(substitutions)


def test_it_pins_the_overlays_image_and_names_the_release_migration() -> None:
    pin, name = steps()["pin-image"], steps()["name-migration"]
    assert pin["name"] == KUSTOMIZE
    assert pin["dir"] == relative(OVERLAYS["gke"])
    assert pin["args"] == ["edit", "set", "image", f"ghcr.io/sapphire-ai/sapphire={IMAGE}:${{_TAG}}"]
    gke = yaml.safe_load((OVERLAYS["gke"] / "kustomization.yaml").read_text())
    assert "ghcr.io/sapphire-ai/sapphire" in {image["name"] for image in gke["images"]}
    assert name["name"] == KUSTOMIZE
    assert name["dir"] == relative(OVERLAYS["gke"] / "migration")
    assert name["args"] == ["edit", "set", "namesuffix", "--", "-${_TAG}"]
    migration = yaml.safe_load((OVERLAYS["gke"] / "migration" / "kustomization.yaml").read_text())
    assert migration["resources"] == ["migrationrun.yaml"]  # the suffix renames nothing else


def test_it_applies_the_crds_then_the_gke_overlay_with_kubectl_and_no_helm() -> None:
    crds, established, apply = steps()["crds"], steps()["crds-established"], steps()["apply"]
    for step in (crds, established, apply):
        assert step["name"] == KUBECTL
        assert step["env"] == CLUSTER_ENV
    assert crds["args"] == ["apply", "-k", relative(CRDS_PHASE)]
    assert established["args"][:3] == ["wait", "--for=condition=Established", "crd"]
    assert "--selector=app.kubernetes.io/part-of=sapphire" in established["args"]
    assert apply["args"] == ["apply", "-k", relative(OVERLAYS["gke"])]
    assert "helm" not in CLOUDBUILD.read_text().lower().replace("no helm", "")


def test_it_waits_for_both_rollouts() -> None:
    for deployment in ("sapphire-operator", "trader-api"):
        step = steps()[f"rollout-{deployment.removeprefix('sapphire-')}"]
        assert step["name"] == KUBECTL
        assert step["env"] == CLUSTER_ENV
        assert step["args"][:3] == ["rollout", "status", f"deployment/{deployment}"]
        assert "--namespace=trading" in step["args"]
