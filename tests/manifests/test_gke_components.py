"""The GKE overlay's optional components, rendered the way a user enables them: listed under
``components:`` in ``overlays/gke/kustomization.yaml`` (here, in a copy of the tree)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.routing import Route

from sapphire.trader_api import dashboard
from sapphire.trader_api.app import create_app
from sapphire.trader_api.settings import TraderApiSettings
from tests.manifests.conftest import MANIFESTS, OVERLAYS, Json, container, find, kinds, render
from tests.manifests.test_rendering import find_settings, strings
from tests.support import kube

COMPONENTS = ("components/dashboard", "components/external-secrets")


def enabled(folder: Path, components: tuple[str, ...]) -> Path:
    """A copy of manifests/ and crds/ under ``folder`` whose gke overlay lists ``components``."""
    shutil.copytree(MANIFESTS, folder / "manifests")
    shutil.copytree(kube.REPOSITORY / "crds", folder / "crds")
    overlay = folder / "manifests" / "overlays" / "gke"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    assert kustomization["components"] == []  # off by default
    kustomization["components"] = list(components)
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return overlay


@pytest.fixture(scope="module")
def gke_with_both(tmp_path_factory: pytest.TempPathFactory) -> list[Json]:
    return render(enabled(tmp_path_factory.mktemp("gke-both"), COMPONENTS))


@pytest.fixture(scope="module")
def gke_with_writes(tmp_path_factory: pytest.TempPathFactory) -> list[Json]:
    return render(enabled(tmp_path_factory.mktemp("gke-writes"), (*COMPONENTS, "components/api-writes")))


def test_both_components_add_exactly_their_objects_and_fill_every_placeholder(
    gke_with_both: list[Json],
) -> None:
    plain = kinds(render(OVERLAYS["gke"]))
    added = {kind: count - plain.get(kind, 0) for kind, count in kinds(gke_with_both).items()}
    assert {kind: count for kind, count in added.items() if count} == {
        "ExternalSecret": 5,
        "GCPBackendPolicy": 1,
        "Gateway": 1,
        "HTTPRoute": 1,
        "HealthCheckPolicy": 1,
        "SecretStore": 1,
        "ServiceAccount": 1,
    }
    placeholders = {"DASHBOARD_HOSTNAME", "DASHBOARD_CERTMAP", "GCP_PROJECT", "CLUSTER_NAME"}
    placeholders |= {"CLUSTER_LOCATION", "SECRETS_GSA"}
    assert placeholders.isdisjoint(strings(gke_with_both))
    assert "Secret" not in kinds(gke_with_both)  # synced by ESO, never in the manifests
    before = {(doc["kind"], doc["metadata"]["name"]) for doc in render(OVERLAYS["gke"])}
    new = [(doc["kind"], doc["metadata"]["name"]) for doc in gke_with_both]
    new = [name for name in new if name not in before]
    assert len(new) == sum(added.values())
    print("\nthe gke overlay with components/dashboard and components/external-secrets adds:")
    for kind, name in new:
        print(f"  {kind}/{name}")
    for doc in gke_with_both:
        if doc["kind"] not in {"ClusterRole", "CustomResourceDefinition", "Namespace"}:
            assert doc["metadata"]["namespace"] == "trading", doc["metadata"]["name"]


class TestDashboard:
    def test_an_https_gateway_for_the_settings_hostname_with_its_certificate_map(
        self, gke_with_both: list[Json]
    ) -> None:
        settings = find_settings()
        gateway = find(gke_with_both, "Gateway", "sapphire")
        assert gateway["spec"]["gatewayClassName"] == "gke-l7-global-external-managed"
        assert (
            gateway["metadata"]["annotations"]["networking.gke.io/certmap"] == settings["dashboard-certmap"]
        )
        (listener,) = gateway["spec"]["listeners"]
        assert (listener["protocol"], listener["port"], listener["hostname"]) == (
            "HTTPS",
            443,
            settings["dashboard-hostname"],
        )
        route = find(gke_with_both, "HTTPRoute", "trader-api-reads")
        assert route["spec"]["hostnames"] == [settings["dashboard-hostname"]]
        assert route["spec"]["parentRefs"] == [{"name": "sapphire", "sectionName": "https"}]

    def test_only_the_dashboard_the_read_api_and_sse_are_exposed(self, gke_with_both: list[Json]) -> None:
        routes = api_routes()
        exposed = {(method, path) for method, path in routes if routed(gke_with_both, method, path)}
        reads = {
            (method, path)
            for method, path in routes
            if method == "GET" and (path.startswith("/v1/") or path.startswith("/dashboard"))
        }
        assert exposed == reads
        assert ("GET", "/v1/events") in exposed  # SSE
        assert ("GET", "/dashboard") in exposed
        for private in (
            ("POST", "/v1/orders"),
            ("PUT", "/v1/risk/state"),
            ("GET", "/mcp"),
            ("GET", "/metrics"),
        ):
            assert private in routes
            assert private not in exposed

    def test_the_mutating_api_and_mcp_only_when_opted_in(self, gke_with_writes: list[Json]) -> None:
        routes = api_routes()
        exposed = {(method, path) for method, path in routes if routed(gke_with_writes, method, path)}
        assert {("POST", "/v1/orders"), ("PUT", "/v1/risk/state"), ("POST", "/mcp")} <= exposed
        assert ("GET", "/metrics") not in exposed
        assert ("GET", "/docs") not in exposed

    def test_the_load_balancer_checks_readiness_and_keeps_sse_open(self, gke_with_both: list[Json]) -> None:
        health = find(gke_with_both, "HealthCheckPolicy", "trader-api")["spec"]
        assert health["targetRef"] == {"group": "", "kind": "Service", "name": "trader-api"}
        assert health["default"]["config"]["httpHealthCheck"]["requestPath"] == "/readyz"
        backend = find(gke_with_both, "GCPBackendPolicy", "trader-api")["spec"]
        assert backend["default"]["timeoutSec"] >= 3600


class TestExternalSecrets:
    def test_every_secret_the_pods_reference_is_synced_from_secret_manager(
        self, gke_with_both: list[Json]
    ) -> None:
        synced = {
            (doc["spec"]["target"]["name"], item["secretKey"])
            for doc in gke_with_both
            if doc["kind"] == "ExternalSecret"
            for item in doc["spec"]["data"]
        }
        trader_api = find(gke_with_both, "Deployment", "trader-api")["spec"]["template"]["spec"]
        referenced = {
            (item["valueFrom"]["secretKeyRef"]["name"], item["valueFrom"]["secretKeyRef"]["key"])
            for item in container(trader_api, "trader-api")["env"]
            if "secretKeyRef" in item.get("valueFrom", {})
        }
        grok = yaml.safe_load((MANIFESTS / "examples" / "sentiment-grok.yaml").read_text())
        llm_key = grok["spec"]["model"]["apiKeySecretRef"]
        assert synced == referenced | {(llm_key["name"], llm_key["key"])}
        for doc in gke_with_both:
            if doc["kind"] == "ExternalSecret":
                assert doc["spec"]["secretStoreRef"] == {"kind": "SecretStore", "name": "gcp-secret-manager"}
                assert doc["spec"]["target"]["creationPolicy"] == "Owner"

    def test_the_store_reads_secret_manager_through_workload_identity(
        self, gke_with_both: list[Json]
    ) -> None:
        settings = find_settings()
        provider = find(gke_with_both, "SecretStore", "gcp-secret-manager")["spec"]["provider"]["gcpsm"]
        assert provider["projectID"] == settings["gcp-project"]
        identity = provider["auth"]["workloadIdentity"]
        assert (identity["clusterName"], identity["clusterLocation"], identity["clusterProjectID"]) == (
            settings["cluster-name"],
            settings["cluster-location"],
            settings["gcp-project"],
        )
        account = find(gke_with_both, "ServiceAccount", identity["serviceAccountRef"]["name"])
        assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"] == settings["secrets-gsa"]
        assert account["automountServiceAccountToken"] is False


def api_routes() -> set[tuple[str, str]]:
    """Every (method, path) the trader API serves, from the app itself: its OpenAPI paths, its
    own top-level routes (MCP, the docs) and the dashboard's; path parameters become ``x``."""
    app = create_app(TraderApiSettings(dev_mode=True))
    served = [(path, {method.upper() for method in item}) for path, item in app.openapi()["paths"].items()]
    served += [(route.path, route.methods or set()) for route in app.routes if isinstance(route, Route)]
    served += [
        (route.path, route.methods or set()) for route in dashboard.router.routes if isinstance(route, Route)
    ]
    found: set[tuple[str, str]] = set()
    for path, methods in served:
        sample = "/".join("x" if part.startswith("{") else part for part in path.split("/"))
        found |= {(method, sample) for method in methods if method != "HEAD"}
    return found


def path_matches(match: dict[str, Any], path: str) -> bool:
    """Gateway API path matching: Exact, or PathPrefix on whole path elements."""
    kind, value = str(match.get("type", "PathPrefix")), str(match.get("value", "/"))
    if kind == "Exact":
        return path == value
    prefix = value.rstrip("/")
    return path == prefix or path.startswith(prefix + "/") or prefix == ""


def routed(documents: list[Json], method: str, path: str) -> bool:
    """Whether any HTTPRoute on the Gateway sends ``method path`` to the trader API."""
    for doc in documents:
        if doc["kind"] != "HTTPRoute":
            continue
        for rule in doc["spec"]["rules"]:
            assert [ref["name"] for ref in rule["backendRefs"]] == ["trader-api"]
            for match in rule["matches"]:
                if match.get("method", method) == method and path_matches(match.get("path", {}), path):
                    return True
    return False
