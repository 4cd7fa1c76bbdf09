"""``kubectl kustomize`` renders the base and each overlay into what the issue asks for."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.manifests.conftest import CRDS_PHASE, OVERLAYS, Json, container, env, find, kinds, render

COMMON = {
    "ClusterRole": 2,
    "ConfigMap": 1,
    "CustomResourceDefinition": 5,
    "Deployment": 2,
    "KopfPeering": 1,
    "Namespace": 1,
    "PodDisruptionBudget": 1,
    "RoleBinding": 1,
    "ServiceAccount": 5,
}
EXPECTED_KINDS = {
    "base": {**COMMON, "NetworkPolicy": 4, "Service": 1},
    "dev": {
        **COMMON,
        "ConfigMap": 2,
        "Deployment": 3,
        "MigrationRun": 1,
        "NetworkPolicy": 7,
        "Secret": 5,
        "Service": 3,
        "StatefulSet": 2,
        "TradingAgent": 5,
    },
    "gke": {**COMMON, "MigrationRun": 1, "NetworkPolicy": 4, "Service": 1},
}
WORKLOAD_KINDS = ("Deployment", "StatefulSet")


def pod_specs(documents: list[Json]) -> list[tuple[str, Json]]:
    return [
        (doc["metadata"]["name"], doc["spec"]["template"]["spec"])
        for doc in documents
        if doc["kind"] in WORKLOAD_KINDS
    ]


def test_each_tree_renders_the_expected_kinds(tree: str) -> None:
    assert kinds(render(OVERLAYS[tree])) == dict(sorted(EXPECTED_KINDS[tree].items()))


def test_every_namespaced_object_lands_in_trading(tree: str) -> None:
    cluster_scoped = {"ClusterRole", "CustomResourceDefinition", "Namespace"}
    for doc in render(OVERLAYS[tree]):
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"].get("namespace") == "trading", f"{doc['kind']}/{doc['metadata']['name']}"


def test_the_crd_phase_holds_every_crd_and_nothing_else() -> None:
    documents = render(CRDS_PHASE)
    assert {doc["kind"] for doc in documents} == {"CustomResourceDefinition"}
    assert sorted(doc["metadata"]["name"] for doc in documents) == [
        "backtestruns.trading.sapphire-ai.com",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
        "migrationruns.trading.sapphire-ai.com",
        "tradingagents.trading.sapphire-ai.com",
    ]
    for doc in documents:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "sapphire"


class TestOperator:
    def test_one_replica_recreated_with_probes_and_a_metrics_port(self, tree: str) -> None:
        deployment = find(render(OVERLAYS[tree]), "Deployment", "sapphire-operator")
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        spec = deployment["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == "sapphire-operator"
        operator = container(spec, "operator")
        assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert operator["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert {p["name"]: p["containerPort"] for p in operator["ports"]} == {"health": 8080, "metrics": 9090}
        variables = env(operator)
        assert variables["SAPPHIRE_HEALTH_PORT"]["value"] == "8080"
        assert variables["SAPPHIRE_METRICS_PORT"]["value"] == "9090"
        assert variables["SAPPHIRE_NAMESPACES"]["value"] == '["trading"]'

    def test_agents_and_migrations_run_the_operators_own_image(self, tree: str) -> None:
        documents = render(OVERLAYS[tree])
        operator = container(
            find(documents, "Deployment", "sapphire-operator")["spec"]["template"]["spec"], "operator"
        )
        assert env(operator)["SAPPHIRE_AGENT_IMAGE"]["value"] == operator["image"]
        trader_api = find(documents, "Deployment", "trader-api")["spec"]["template"]["spec"]
        assert container(trader_api, "trader-api")["image"] == operator["image"]

    def test_agent_pods_get_their_own_service_accounts_and_token_secret(self, tree: str) -> None:
        documents = render(OVERLAYS[tree])
        operator = container(
            find(documents, "Deployment", "sapphire-operator")["spec"]["template"]["spec"], "operator"
        )
        variables = env(operator)
        accounts = {doc["metadata"]["name"] for doc in documents if doc["kind"] == "ServiceAccount"}
        assert variables["SAPPHIRE_AGENT_SERVICE_ACCOUNT"]["value"] in accounts
        assert variables["SAPPHIRE_MIGRATION_SERVICE_ACCOUNT"]["value"] in accounts
        assert variables["SAPPHIRE_BACKTEST_SERVICE_ACCOUNT"]["value"] in accounts
        assert variables["SAPPHIRE_AGENT_TOKEN_SECRET"]["value"] == "sapphire-agent-token"


class TestTraderApi:
    def test_a_deployment_behind_a_service_with_a_disruption_budget(self, tree: str) -> None:
        documents = render(OVERLAYS[tree])
        deployment = find(documents, "Deployment", "trader-api")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        service = find(documents, "Service", "trader-api")
        budget = find(documents, "PodDisruptionBudget", "trader-api")
        for selector in (service["spec"]["selector"], budget["spec"]["selector"]["matchLabels"]):
            assert selector.items() <= labels.items()
        assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http"}]
        trader_api = container(deployment["spec"]["template"]["spec"], "trader-api")
        assert trader_api["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert trader_api["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert env(trader_api)["SAPPHIRE_HOST"]["value"] == "0.0.0.0"

    def test_the_operator_and_agents_find_the_trader_api_at_its_service(self, tree: str) -> None:
        endpoints = find(render(OVERLAYS[tree]), "ConfigMap", "sapphire-endpoints")
        assert endpoints["data"]["trader-api-url"] == "http://trader-api.trading.svc:8000"

    def test_every_secret_is_referenced_by_name(self, tree: str) -> None:
        deployment = find(render(OVERLAYS[tree]), "Deployment", "trader-api")
        variables = env(container(deployment["spec"]["template"]["spec"], "trader-api"))
        references = {
            name: (item["valueFrom"]["secretKeyRef"]["name"], item["valueFrom"]["secretKeyRef"]["key"])
            for name, item in variables.items()
            if "secretKeyRef" in item.get("valueFrom", {})
        }
        assert references == {
            "SAPPHIRE_DATABASE_URL": ("sapphire-database", "url"),
            "SAPPHIRE_ADMIN_TOKEN": ("sapphire-admin-token", "token"),
            "SAPPHIRE_AGENT_TOKEN": ("sapphire-agent-token", "token"),
            "SAPPHIRE_READ_TOKEN": ("sapphire-read-token", "token"),
        }


class TestSecurity:
    @pytest.mark.parametrize("name", ["base", "gke"])
    def test_no_secret_is_ever_embedded_outside_dev(self, name: str) -> None:
        assert "Secret" not in kinds(render(OVERLAYS[name]))

    def test_the_dev_secrets_are_marked_dev_only(self) -> None:
        for doc in render(OVERLAYS["dev"]):
            if doc["kind"] == "Secret":
                assert doc["metadata"]["labels"]["trading.sapphire-ai.com/dev-only"] == "true"

    def test_the_namespace_enforces_the_restricted_pod_security_standard(self, tree: str) -> None:
        labels = find(render(OVERLAYS[tree]), "Namespace", "trading")["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    def test_every_container_is_non_root_read_only_and_drops_all_capabilities(self, tree: str) -> None:
        for name, spec in pod_specs(render(OVERLAYS[tree])):
            assert spec["securityContext"]["runAsNonRoot"] is True, name
            assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
            for item in [*spec.get("initContainers", []), *spec["containers"]]:
                context = item["securityContext"]
                assert context["allowPrivilegeEscalation"] is False, (name, item["name"])
                assert context["readOnlyRootFilesystem"] is True, (name, item["name"])
                assert context["capabilities"] == {"drop": ["ALL"]}, (name, item["name"])

    def test_sapphire_pods_run_as_uid_10001(self, tree: str) -> None:
        for doc in render(OVERLAYS[tree]):
            if doc["kind"] == "Deployment":
                assert doc["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001

    def test_only_the_operator_mounts_a_kubernetes_token(self, tree: str) -> None:
        documents = render(OVERLAYS[tree])
        for doc in documents:
            if doc["kind"] == "ServiceAccount":
                expected = doc["metadata"]["name"] == "sapphire-operator"
                assert doc.get("automountServiceAccountToken") is expected, doc["metadata"]["name"]
        for name, spec in pod_specs(documents):
            assert spec["automountServiceAccountToken"] is (name == "sapphire-operator"), name


def egress(documents: list[Json], name: str) -> list[Json]:
    policy = find(documents, "NetworkPolicy", name)
    assert policy["spec"]["policyTypes"] == ["Egress"]
    rules: list[Json] = policy["spec"]["egress"]
    return rules


def destinations(rules: list[Json]) -> list[tuple[str, tuple[int, ...]]]:
    """Each rule as (where, ports): a component label, ``dns``, or an ipBlock CIDR."""
    found: list[tuple[str, tuple[int, ...]]] = []
    for rule in rules:
        ports = tuple(sorted({port["port"] for port in rule["ports"]}))
        for peer in rule["to"]:
            if "ipBlock" in peer:
                found.append((peer["ipBlock"]["cidr"], ports))
            elif "namespaceSelector" in peer:
                assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
                found.append(("dns", ports))
            else:
                found.append((peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"], ports))
    return found


class TestNetworkPolicies:
    @pytest.mark.parametrize("name", ["base", "dev"])
    def test_in_cluster_agents_reach_only_the_trader_api_redis_and_dns(self, name: str) -> None:
        documents = render(OVERLAYS[name])
        assert destinations(egress(documents, "agent-egress")) == [
            ("dns", (53,)),
            ("trader-api", (8000,)),
            ("redis", (6379,)),
        ]
        assert destinations(egress(documents, "trader-api-egress")) == [
            ("dns", (53,)),
            ("database", (5432,)),
            ("redis", (6379,)),
            ("trader-api", (8000,)),  # followers forward writes to the writer
        ]
        assert destinations(egress(documents, "migration-egress")) == [("dns", (53,)), ("database", (5432,))]

    def test_the_in_cluster_stores_carry_the_labels_the_policies_name(self) -> None:
        documents = render(OVERLAYS["dev"])
        for name, component in (("postgres", "database"), ("redis", "redis")):
            labels = find(documents, "StatefulSet", name)["spec"]["template"]["metadata"]["labels"]
            assert labels["app.kubernetes.io/component"] == component
            assert labels["app.kubernetes.io/part-of"] == "sapphire"

    def test_on_gke_the_stores_are_the_private_services_range(self) -> None:
        documents = render(OVERLAYS["gke"])
        private = find_settings()["private-services-cidr"]
        assert destinations(egress(documents, "agent-egress")) == [
            ("dns", (53,)),
            ("trader-api", (8000,)),
            (private, (6379,)),
        ]
        trader_api = destinations(egress(documents, "trader-api-egress"))
        assert trader_api[:2] == [("dns", (53,)), (private, (3307, 6379))]
        assert trader_api[-1] == ("trader-api", (8000,))
        assert destinations(egress(documents, "migration-egress"))[:2] == [("dns", (53,)), (private, (3307,))]

    def test_llm_egress_is_opt_in_per_agent(self, tree: str) -> None:
        policy = find(render(OVERLAYS[tree]), "NetworkPolicy", "agent-llm-egress")
        assert policy["spec"]["podSelector"]["matchLabels"]["trading.sapphire-ai.com/llm-egress"] == "true"


def find_settings() -> dict[str, str]:
    settings = yaml.safe_load((OVERLAYS["gke"] / "settings.yaml").read_text())
    data: dict[str, str] = settings["data"]
    return data


class TestDevOverlay:
    def test_postgres_15_and_redis_7_run_as_stateful_sets_with_volumes(self) -> None:
        documents = render(OVERLAYS["dev"])
        for name, image in (("postgres", "postgres:15."), ("redis", "redis:7.")):
            stateful_set = find(documents, "StatefulSet", name)
            assert container(stateful_set["spec"]["template"]["spec"], name)["image"].startswith(image)
            claims = stateful_set["spec"]["volumeClaimTemplates"]
            assert [claim["metadata"]["name"] for claim in claims] == ["data"]
            assert find(documents, "Service", name)["spec"]["clusterIP"] == "None"

    def test_the_example_agents_and_an_initial_migration_are_included(self) -> None:
        documents = render(OVERLAYS["dev"])
        agents = sorted(doc["metadata"]["name"] for doc in documents if doc["kind"] == "TradingAgent")
        assert agents == ["executor", "mean-reversion", "microstructure-all-market", "momentum", "volatility"]
        migration = find(documents, "MigrationRun", "trading-to-head")
        assert migration["spec"]["revision"] == "head"
        assert migration["spec"]["database"]["urlSecretRef"] == {"name": "sapphire-database", "key": "url"}

    def test_the_database_url_points_at_the_in_cluster_postgres(self) -> None:
        secret = find(render(OVERLAYS["dev"]), "Secret", "sapphire-database")
        assert secret["metadata"]["name"] == "sapphire-database"  # no hash: the MigrationRun names it
        url = base64.b64decode(secret["data"]["url"]).decode()
        assert url.startswith("postgresql://sapphire:")
        assert url.endswith("@postgres.trading.svc:5432/trading")

    def test_the_simulated_feed_runs_in_its_own_deployment_not_in_the_api(self) -> None:
        documents = render(OVERLAYS["dev"])
        api = container(find(documents, "Deployment", "trader-api")["spec"]["template"]["spec"], "trader-api")
        assert not [name for name in env(api) if name.startswith("SAPPHIRE_FEED")]
        feed = find(documents, "Deployment", "sapphire-market-feed")
        assert feed["spec"]["replicas"] == 1
        assert container(feed["spec"]["template"]["spec"], "market-feed")["args"] == ["feed"]


def proxy_args(item: dict[str, Any]) -> list[str]:
    assert item["image"].startswith("gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.")
    assert item["restartPolicy"] == "Always"  # a native sidecar
    assert item["startupProbe"]["httpGet"]["path"] == "/startup"
    args: list[str] = item["args"]
    return args


class TestGkeOverlay:
    def test_no_database_or_redis_runs_in_the_cluster(self) -> None:
        documents = render(OVERLAYS["gke"])
        assert "StatefulSet" not in kinds(documents)
        assert "Secret" not in kinds(documents)
        assert (
            find(documents, "ConfigMap", "sapphire-endpoints")["data"]["redis-url"]
            == find_settings()["redis-url"]
        )

    def test_the_trader_api_has_the_cloud_sql_proxy_as_a_native_sidecar(self) -> None:
        spec = find(render(OVERLAYS["gke"]), "Deployment", "trader-api")["spec"]["template"]["spec"]
        args = proxy_args(container(spec, "cloud-sql-proxy", init=True))
        assert args[-1] == find_settings()["cloudsql-instance"]
        assert "--port=5432" in args
        assert "--private-ip" in args

    def test_the_release_migration_has_the_proxy_and_the_release_image(self) -> None:
        documents = render(OVERLAYS["gke"])
        migration = find(documents, "MigrationRun", "trading-to-head")
        (sidecar,) = migration["spec"]["sidecars"]
        assert proxy_args(sidecar)[-1] == find_settings()["cloudsql-instance"]
        operator = find(documents, "Deployment", "sapphire-operator")["spec"]["template"]["spec"]
        assert migration["spec"]["image"] == container(operator, "operator")["image"]

    def test_service_accounts_carry_workload_identity_annotations(self) -> None:
        documents = render(OVERLAYS["gke"])
        settings = find_settings()
        for account, key in (
            ("sapphire-trader-api", "trader-api-gsa"),
            ("sapphire-migration", "migration-gsa"),
            ("sapphire-agent", "agent-gsa"),
        ):
            annotations = find(documents, "ServiceAccount", account)["metadata"]["annotations"]
            assert annotations["iam.gke.io/gcp-service-account"] == settings[key]

    def test_every_placeholder_is_filled_and_the_settings_are_not_applied(self) -> None:
        documents = render(OVERLAYS["gke"])
        placeholders = {"INSTANCE_CONNECTION_NAME", "REDIS_URL", "PRIVATE_SERVICES_CIDR"}
        placeholders |= {"TRADER_API_GSA", "MIGRATION_GSA", "AGENT_GSA"}
        assert placeholders.isdisjoint(strings(documents))
        assert "gke-settings" not in {doc["metadata"]["name"] for doc in documents}


def strings(node: Any) -> Iterator[str]:
    """Every string value in a rendered tree."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
