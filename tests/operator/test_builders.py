"""The pure builders, without a cluster: what a TradingAgent, a MigrationRun and a BacktestRun become."""

from __future__ import annotations

import copy
import datetime
import json
from typing import Any

import yaml

from sapphire.operator import builders, payloads, resync
from sapphire.operator.settings import OperatorSettings
from sapphire.resources import backtestrun, migrationrun, tradingagent

SETTINGS = OperatorSettings(agent_image="registry.example/sapphire:1.2.3")


def spec(**fields: Any) -> tradingagent.TradingAgentSpec:
    return tradingagent.TradingAgentSpec.model_validate({"role": "momentum", **fields})


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


RISK = {
    "maxOrderNotional": "1000",
    "maxPositionNotional": "5000",
    "maxGrossExposure": "9000",
    "maxDailyLoss": "500",
}


def test_an_analyst_is_one_rolling_replica_with_our_labels() -> None:
    deployment = builders.build_agent_deployment(name="momo", namespace="ns", spec=spec(), settings=SETTINGS)
    assert deployment["metadata"]["name"] == "agent-momo"
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["trading.sapphire-ai.com/agent"] == "momo"
    assert labels["trading.sapphire-ai.com/role"] == "momentum"
    assert labels["app.kubernetes.io/managed-by"] == "sapphire-operator"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert all(labels[key] == value for key, value in selector.items())


def test_the_executor_is_recreated_never_rolled_and_gets_its_risk_limits() -> None:
    executor = spec(role="executor", risk=RISK, symbols=["BTC-USD"])
    deployment = builders.build_agent_deployment(
        name="grok", namespace="ns", spec=executor, settings=SETTINGS
    )
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    env = env_of(deployment)
    assert env["SAPPHIRE_RISK_MAX_ORDER_NOTIONAL"] == "1000"
    assert env["SAPPHIRE_RISK_MAX_DAILY_LOSS"] == "500"
    assert json.loads(env["SAPPHIRE_SYMBOLS"]) == ["BTC-USD"]


def test_env_wiring_takes_tokens_and_api_keys_from_secrets_only() -> None:
    model = {
        "provider": "openai-compatible",
        "name": "grok-4",
        "endpoint": "https://api.x.ai/v1",
        "apiKeySecretRef": {"name": "xai", "key": "api-key"},
    }
    env = env_of(
        builders.build_agent_deployment(name="s", namespace="ns", spec=spec(model=model), settings=SETTINGS)
    )
    assert env["SAPPHIRE_AGENT_TOKEN"] == {"secretKeyRef": {"name": "sapphire-agent-token", "key": "token"}}
    assert env["SAPPHIRE_MODEL_API_KEY"] == {"secretKeyRef": {"name": "xai", "key": "api-key"}}
    assert env["SAPPHIRE_MODEL_ENDPOINT"] == "https://api.x.ai/v1"
    assert env["SAPPHIRE_TRADER_API_URL"] == str(SETTINGS.trader_api_url)


def test_pods_are_non_root_read_only_and_cannot_escalate() -> None:
    deployment = builders.build_agent_deployment(name="m", namespace="ns", spec=spec(), settings=SETTINGS)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["limits"]["memory"] == "512Mi"
    assert pod["automountServiceAccountToken"] is False


def test_paused_or_waiting_for_schema_means_zero_replicas() -> None:
    paused = builders.build_agent_deployment(
        name="m", namespace="ns", spec=spec(paused=True), settings=SETTINGS
    )
    waiting = builders.build_agent_deployment(
        name="m", namespace="ns", spec=spec(), settings=SETTINGS, schema_ready=False
    )
    assert paused["spec"]["replicas"] == waiting["spec"]["replicas"] == 0


def test_pod_template_overrides_merge_by_name_without_mutating_the_spec() -> None:
    template = {
        "metadata": {"labels": {"team": "quant", "trading.sapphire-ai.com/agent": "spoofed"}},
        "spec": {
            "nodeSelector": {"pool": "trading"},
            "containers": [{"name": "agent", "args": ["agent", "run", "--verbose"]}],
        },
    }
    agent = spec(podTemplate=template)
    before = copy.deepcopy(agent.model_dump())
    deployment = builders.build_agent_deployment(name="m", namespace="ns", spec=agent, settings=SETTINGS)
    pod = deployment["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"pool": "trading"}
    [container] = pod["spec"]["containers"]
    assert container["args"] == ["agent", "run", "--verbose"]
    assert container["image"] == "registry.example/sapphire:1.2.3"
    assert container["env"], "the merge keeps the rest of our container"
    assert pod["metadata"]["labels"]["team"] == "quant"
    assert pod["metadata"]["labels"]["trading.sapphire-ai.com/agent"] == "m"
    assert agent.model_dump() == before


def test_deep_merge_leaves_both_inputs_alone() -> None:
    base = {"a": {"b": 1}, "items": [{"name": "x", "v": 1}], "keep": [1, 2]}
    override = {"a": {"c": 2}, "items": [{"name": "x", "v": 2}, {"name": "y"}], "keep": [3]}
    snapshot = copy.deepcopy((base, override))
    merged = builders.deep_merge(base, override)
    assert merged == {"a": {"b": 1, "c": 2}, "items": [{"name": "x", "v": 2}, {"name": "y"}], "keep": [3]}
    assert (base, override) == snapshot


def test_a_migration_pod_runs_migrate_beside_native_sidecars() -> None:
    run = migrationrun.MigrationRunSpec.model_validate(
        {
            "revision": "head",
            "database": {"name": "trading", "urlSecretRef": {"name": "db", "key": "url"}},
            "sidecars": [{"name": "proxy", "image": "proxy:2"}],
        }
    )
    pod = builders.build_migration_pod(name="mr", namespace="ns", spec=run, attempt=2, settings=SETTINGS)
    assert pod["metadata"]["name"] == "mr-2"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["initContainers"] == [{"name": "proxy", "image": "proxy:2", "restartPolicy": "Always"}]
    [migrate] = pod["spec"]["containers"]
    assert migrate["name"] == "migrate"
    assert migrate["args"][:5] == ["migrate", "--revision", "head", "--direction", "upgrade"]
    assert migrate["terminationMessagePath"] == migrate["args"][-1]
    database_url = next(e for e in migrate["env"] if e["name"] == "DATABASE_URL")
    assert database_url["valueFrom"] == {"secretKeyRef": {"name": "db", "key": "url"}}
    assert pod["metadata"]["labels"]["trading.sapphire-ai.com/attempt"] == "2"


def test_a_backtest_pod_is_non_root_without_a_token_and_carries_its_agents_in_its_env() -> None:
    run = backtestrun.BacktestRunSpec.model_validate(
        {
            "agents": [{"name": "momo", "tradingAgentRef": "momentum"}],
            "data": {"url": "https://data.example/bars.parquet", "sha256": "a" * 64},
            "start": "2026-01-05T00:00:00Z",
            "reportClaimName": "reports",
        }
    )
    agents = builders.backtest_agents_yaml({"momo": {"role": "momentum", "paused": True}})
    pod = builders.build_backtest_pod(
        name="bt", namespace="ns", spec=run, period=run.slices()[0], agents_yaml=agents, settings=SETTINGS
    )
    assert pod["metadata"]["name"] == "bt-1"
    assert pod["metadata"]["labels"]["trading.sapphire-ai.com/backtestrun"] == "bt"
    pod_spec = pod["spec"]
    assert (pod_spec["restartPolicy"], pod_spec["automountServiceAccountToken"]) == ("Never", False)
    assert pod_spec["serviceAccountName"] == "sapphire-backtest"
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    (container,) = pod_spec["containers"]
    assert container["securityContext"] == builders.restricted_container_security()
    args = container["args"]
    assert args[:5] == ["backtest", "--agents-env", "SAPPHIRE_BACKTEST_AGENTS", "--data", run.data.url]
    assert args[args.index("--from") + 1] == "2026-01-05T00:00:00+00:00"
    assert "--to" not in args
    assert args[args.index("--output") + 1] == "/report/bt"
    assert args[args.index("--data-sha256") + 1] == "a" * 64
    (document,) = yaml.safe_load_all(container["env"][0]["value"])
    # A paused TradingAgent is backtested: the copy drops paused.
    assert document == {
        "apiVersion": "trading.sapphire-ai.com/v1alpha1",
        "kind": "TradingAgent",
        "metadata": {"name": "momo"},
        "spec": {"role": "momentum"},
    }
    assert {"name": "report", "persistentVolumeClaim": {"claimName": "reports"}} in pod_spec["volumes"]


def test_long_names_still_give_valid_pod_names() -> None:
    name = builders.attempt_pod_name("m" * 63, 10)
    assert len(name) <= 63
    assert name.endswith("-10")


def test_peering_pauses_for_a_live_peer_of_higher_or_equal_priority() -> None:
    now = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
    fresh = (now - datetime.timedelta(seconds=5)).isoformat()
    stale = (now - datetime.timedelta(seconds=120)).isoformat()
    peers: dict[str, payloads.Peer] = {"me": {"priority": 5, "lastseen": fresh, "lifetime": 60}}
    assert resync.peering_allows(peers, identity="me", priority=5, now=now)
    higher: dict[str, payloads.Peer] = {**peers, "other": {"priority": 9, "lastseen": fresh, "lifetime": 60}}
    assert not resync.peering_allows(higher, identity="me", priority=5, now=now)
    same: dict[str, payloads.Peer] = {**peers, "other": {"priority": 5, "lastseen": fresh, "lifetime": 60}}
    assert not resync.peering_allows(same, identity="me", priority=5, now=now)
    lower: dict[str, payloads.Peer] = {**peers, "other": {"priority": 1, "lastseen": fresh, "lifetime": 60}}
    assert resync.peering_allows(lower, identity="me", priority=5, now=now)
    dead: dict[str, payloads.Peer] = {**peers, "other": {"priority": 9, "lastseen": stale, "lifetime": 60}}
    assert resync.peering_allows(dead, identity="me", priority=5, now=now)


def test_an_agent_is_probed_on_its_metrics_port_and_leaves_its_last_words() -> None:
    deployment = builders.build_agent_deployment(name="m", namespace="ns", spec=spec(), settings=SETTINGS)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [{"name": "metrics", "containerPort": SETTINGS.agent_metrics_port}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["SAPPHIRE_TERMINATION_LOG"] == container["terminationMessagePath"] == "/dev/termination-log"
    assert env["SAPPHIRE_METRICS_PORT"] == str(SETTINGS.agent_metrics_port)

    quiet = OperatorSettings(agent_image="registry.example/sapphire:1.2.3", agent_metrics_port=0)
    deployment = builders.build_agent_deployment(name="m", namespace="ns", spec=spec(), settings=quiet)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "readinessProbe" not in container  # nothing would answer it
    assert "livenessProbe" not in container
    assert container["ports"] == []


def test_the_handlers_label_filters_select_what_the_builders_label() -> None:
    for component in ("agent", "migration", "backtest"):
        selector = builders.managed_selector(component)
        assert selector.items() <= builders.common_labels(component, "x").items()
        assert selector["app.kubernetes.io/component"] == component
