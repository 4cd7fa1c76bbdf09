"""The monitoring component: alert rules that promtool accepts and tests, scrape targets that
find the services, and a dashboard that asks only for metrics the services export."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import prometheus_client
import pytest
import yaml

from sapphire.agents.llm import base as llm_base
from sapphire.operator import builders
from sapphire.operator import metrics as operator_metrics
from sapphire.operator.settings import OperatorSettings
from sapphire.resources import tradingagent
from sapphire.trader_api import metrics as trader_api_metrics
from tests.manifests.conftest import BASE, MANIFESTS, Json, find, kinds, render

MONITORING = MANIFESTS / "components" / "monitoring"
RULE_TESTS = Path(__file__).parent / "alerts.test.yaml"
DASHBOARD = MONITORING / "sapphire-dashboard.json"

ISSUE_ALERTS = {
    "SapphireTraderApiDown",
    "SapphireOperatorDown",
    "SapphireTradingHalted",
    "SapphireMarketFeedStale",
    "SapphireOrderRejectionRateHigh",
    "SapphireAgentNotReady",
    "SapphireMigrationRunFailed",
    "SapphireReconcileErrors",
    "SapphireLlmAbstentionRateHigh",
    "SapphireLlmLatencyHigh",
}
"""The alerts the issue lists, by the name each has in the rule."""


def compose(folder: Path, *, resources: list[Path], components: list[Path]) -> Path:
    """A kustomization in ``folder`` that combines trees; kustomize takes only relative paths."""
    kustomization = {
        "namespace": "trading",
        "resources": [os.path.relpath(path, folder) for path in resources],
        "components": [os.path.relpath(path, folder) for path in components],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return folder


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> list[Json]:
    """The base with the monitoring component."""
    folder = tmp_path_factory.mktemp("monitored")
    return render(compose(folder, resources=[BASE], components=[MONITORING]))


def rule_groups() -> list[Json]:
    rule = yaml.safe_load((MONITORING / "prometheus-rule.yaml").read_text())
    groups: list[Json] = rule["spec"]["groups"]
    return groups


def alerts() -> dict[str, Json]:
    return {rule["alert"]: rule for group in rule_groups() for rule in group["rules"]}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        raise RuntimeError("no promtool: run scripts/ensure-system-packages.sh (Debian's prometheus)")
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60)


@pytest.fixture
def rules_folder(tmp_path: Path) -> Path:
    """The PrometheusRule's spec as a plain rules file, beside a copy of the rule tests."""
    (tmp_path / "sapphire.rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    return tmp_path


class TestComponent:
    def test_it_adds_the_rule_the_monitors_the_dashboard_and_the_operators_metrics_service(
        self, monitored: list[Json]
    ) -> None:
        added = {kind: count - kinds(render(BASE)).get(kind, 0) for kind, count in kinds(monitored).items()}
        assert {kind: count for kind, count in added.items() if count} == {
            "ConfigMap": 1,
            "PodMonitor": 1,
            "PrometheusRule": 1,
            "Service": 1,
            "ServiceMonitor": 2,
        }
        for doc in monitored:
            assert doc["metadata"].get("namespace") == "trading" or doc["kind"] in {
                "ClusterRole",
                "CustomResourceDefinition",
                "Namespace",
            }

    @pytest.mark.parametrize("monitor", ["trader-api", "operator"])
    def test_each_service_monitor_selects_one_service_by_a_port_it_has(
        self, monitored: list[Json], monitor: str
    ) -> None:
        spec = find(monitored, "ServiceMonitor", monitor)["spec"]
        selected = [
            doc
            for doc in monitored
            if doc["kind"] == "Service"
            and spec["selector"]["matchLabels"].items() <= doc["metadata"].get("labels", {}).items()
        ]
        assert len(selected) == 1, [doc["metadata"]["name"] for doc in selected]
        (endpoint,) = spec["endpoints"]
        assert endpoint["port"] in {port["name"] for port in selected[0]["spec"]["ports"]}
        # The rules select on job="<component>"; jobLabel takes it from the Service.
        assert selected[0]["metadata"]["labels"][spec["jobLabel"]] == monitor

    def test_the_operators_metrics_service_reaches_the_operators_metrics_port(
        self, monitored: list[Json]
    ) -> None:
        service = find(monitored, "Service", "sapphire-operator-metrics")["spec"]
        pod = find(monitored, "Deployment", "sapphire-operator")["spec"]["template"]
        assert service["selector"].items() <= pod["metadata"]["labels"].items()
        ports = {port["name"] for container in pod["spec"]["containers"] for port in container["ports"]}
        assert service["ports"][0]["targetPort"] in ports

    def test_the_pod_monitor_selects_the_agent_pods_the_operator_builds(self, monitored: list[Json]) -> None:
        spec = find(monitored, "PodMonitor", "agents")["spec"]
        deployment = builders.build_agent_deployment(
            name="momentum",
            namespace="trading",
            spec=tradingagent.TradingAgentSpec.model_validate({"role": "momentum"}),
            settings=OperatorSettings(),
        )
        template = deployment["spec"]["template"]
        assert spec["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        assert template["metadata"]["labels"][spec["jobLabel"]] == "agent"
        (container,) = template["spec"]["containers"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports[spec["podMetricsEndpoints"][0]["port"]] == OperatorSettings().agent_metrics_port
        variables = {item["name"]: item.get("value") for item in container["env"]}
        assert variables["SAPPHIRE_METRICS_PORT"] == str(OperatorSettings().agent_metrics_port)

    def test_the_dashboard_configmap_carries_the_json_and_the_grafana_sidecar_label(
        self, monitored: list[Json]
    ) -> None:
        configmap = find(monitored, "ConfigMap", "sapphire-grafana-dashboard")
        assert configmap["metadata"]["name"] == "sapphire-grafana-dashboard"  # stable: no hash suffix
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(configmap["data"]["sapphire-dashboard.json"]) == json.loads(DASHBOARD.read_text())


class TestRules:
    def test_promtool_accepts_the_rules(self, rules_folder: Path) -> None:
        result = promtool("check", "rules", "sapphire.rules.yaml", cwd=rules_folder)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"SUCCESS: {len(alerts())} rules found" in result.stdout

    def test_promtool_runs_the_rule_unit_tests(self, rules_folder: Path) -> None:
        result = promtool("test", "rules", RULE_TESTS.name, cwd=rules_folder)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout

    def test_promtool_fails_a_rule_test_that_expects_the_wrong_thing(self, rules_folder: Path) -> None:
        """The unit tests can fail: a halt expected at the wrong severity is caught."""
        halted = "\n            exp_annotations:\n              summary: Trading is HALTED"
        broken = RULE_TESTS.read_text().replace(
            "exp_labels: {severity: critical}" + halted, "exp_labels: {severity: warning}" + halted
        )
        assert broken != RULE_TESTS.read_text()
        (rules_folder / RULE_TESTS.name).write_text(broken)
        result = promtool("test", "rules", RULE_TESTS.name, cwd=rules_folder)
        assert result.returncode != 0
        assert "SapphireTradingHalted" in result.stdout + result.stderr

    def test_every_alert_the_issue_asks_for_exists_and_every_alert_has_a_unit_test(self) -> None:
        assert set(alerts()) >= ISSUE_ALERTS
        tested = {
            case["alertname"]
            for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
            for case in test["alert_rule_test"]
            if case["exp_alerts"]
        }
        assert tested == set(alerts())

    def test_every_alert_has_a_severity_a_summary_and_a_description(self) -> None:
        for name, rule in alerts().items():
            assert rule["labels"]["severity"] in {"critical", "warning"}, name
            assert rule["annotations"]["summary"], name
            assert rule["annotations"]["description"], name


def exported() -> dict[str, set[str]]:
    """Every series name the three kinds of process serve on /metrics, with its label names:
    the trader API's registry, the operator's, and the agents' (the default registry, where
    the LLM guard registers its metrics)."""
    series: dict[str, set[str]] = {"up": {"job", "instance"}}
    registries = [
        trader_api_metrics.Metrics().registry,
        operator_metrics.REGISTRY,
        prometheus_client.REGISTRY,
    ]
    assert llm_base.CALLS in prometheus_client.REGISTRY._collector_to_names
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
    for registry in registries:
        for collector in registry._collector_to_names:
            family: str = getattr(collector, "_name", "")
            labels: tuple[str, ...] = getattr(collector, "_labelnames", ())
            kind: str = getattr(collector, "_type", "")
            for suffix in suffixes.get(kind, ("",)):
                series[family + suffix] = {
                    "job",
                    "instance",
                    *labels,
                    *({"le"} if suffix == "_bucket" else ()),
                }
    return series


SERIES = re.compile(r"\b(?P<name>sapphire_[a-z0-9_]+|up)\b(?:\{(?P<matchers>[^}]*)\})?")
GROUPING = re.compile(r"\b(?:by|without)\s*\((?P<labels>[^)]*)\)")
MATCHER = re.compile(r"(?P<label>[a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every alert and every dashboard query."""
    found = [(f"alert {name}", rule["expr"]) for name, rule in alerts().items()]
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        found += [(f"panel {panel['title']!r}", target["expr"]) for target in panel.get("targets", [])]
    return found


class TestOnlyExportedMetrics:
    def test_the_dashboard_covers_trading_agents_and_the_operator(self) -> None:
        dashboard = json.loads(DASHBOARD.read_text())
        rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
        assert rows == ["Trading", "Agents", "Operator"]
        queries = [expr for where, expr in expressions() if where.startswith("panel")]
        for prefix in ("sapphire_risk_state", "sapphire_orders_total", "sapphire_llm_", "sapphire_operator_"):
            assert any(prefix in expr for expr in queries), prefix

    def test_every_series_an_expression_names_is_exported_with_the_labels_it_uses(self) -> None:
        series = exported()
        for where, expr in expressions():
            named = list(SERIES.finditer(expr))
            assert named, (where, expr)
            used: set[str] = set()
            for match in named:
                name = match["name"]
                assert name in series, f"{where}: {name} is not exported"
                used |= series[name]
                for label in MATCHER.findall(match["matchers"] or ""):
                    assert label in series[name], f"{where}: {name} has no label {label}"
            for grouping in GROUPING.finditer(expr):
                for label in (item.strip() for item in grouping["labels"].split(",")):
                    assert label in used, f"{where}: no series in it has the label {label}"

    def test_the_check_notices_a_metric_no_service_exports(self) -> None:
        assert "sapphire_orders_total" in exported()
        assert "sapphire_order_total" not in exported()
        assert "sapphire_orders" not in exported()  # a counter's series is its name plus _total
