"""The notifier's and the news feed's components: least privilege, the pod security of the
other workloads, and an environment that names only settings the processes have."""

from __future__ import annotations

import os
from pathlib import Path

import pydantic_settings
import pytest
import yaml

from sapphire.feed.settings import MarketFeedSettings
from sapphire.news.settings import NewsFeedSettings
from sapphire.notify.settings import NotifySettings
from sapphire.trader_api.settings import TraderApiSettings
from tests.manifests.conftest import BASE, MANIFESTS, Json, container, env, find, render

COMPONENTS = MANIFESTS / "components"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[Json]:
    folder = tmp_path_factory.mktemp("services")
    kustomization = {
        "namespace": "trading",
        "resources": [os.path.relpath(BASE, folder)],
        "components": [
            os.path.relpath(COMPONENTS / name, folder)
            for name in ("notifications", "news-feed", "market-feed")
        ],
    }
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return render(folder)


def settings_variables(settings: type[pydantic_settings.BaseSettings]) -> set[str]:
    # SAPPHIRE_FEED_SOURCE is the environment variable of `sapphire feed --source`.
    return {f"SAPPHIRE_{name.upper()}" for name in settings.model_fields} | {
        "REDIS_URL",
        "SAPPHIRE_FEED_SOURCE",
    }


@pytest.mark.parametrize(
    ("deployment", "name", "settings", "args"),
    [
        ("sapphire-notify", "notify", NotifySettings, ["notify"]),
        ("sapphire-news-feed", "news-feed", NewsFeedSettings, ["feed", "--source", "news"]),
        ("sapphire-market-feed", "market-feed", MarketFeedSettings, ["feed"]),
    ],
)
def test_each_runs_one_replica_of_its_command_with_only_known_settings(
    rendered: list[Json],
    deployment: str,
    name: str,
    settings: type[pydantic_settings.BaseSettings],
    args: list[str],
) -> None:
    spec = find(rendered, "Deployment", deployment)["spec"]
    assert (spec["replicas"], spec["strategy"]) == (1, {"type": "Recreate"})
    pod = spec["template"]["spec"]
    main = container(pod, name)
    assert main["args"] == args
    assert set(env(main)) <= settings_variables(settings)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    configmaps = {doc["metadata"]["name"] for doc in rendered if doc["kind"] == "ConfigMap"}
    for item in env(main).values():
        reference = item.get("valueFrom", {}).get("configMapKeyRef")
        if reference:
            assert reference["name"] in configmaps  # kustomize renamed it with the hash


def test_the_notifier_keeps_its_record_on_its_volume_and_may_only_read_the_custom_resources(
    rendered: list[Json],
) -> None:
    pod = find(rendered, "Deployment", "sapphire-notify")["spec"]["template"]["spec"]
    variables = env(container(pod, "notify"))
    record = Path(variables["SAPPHIRE_NOTIFY_RECORD_PATH"]["value"])
    mounts = {m["name"]: m["mountPath"] for m in container(pod, "notify")["volumeMounts"]}
    assert str(record.parent) == mounts["data"]
    claim = next(v for v in pod["volumes"] if v["name"] == "data")["persistentVolumeClaim"]["claimName"]
    find(rendered, "PersistentVolumeClaim", claim)
    assert variables["SAPPHIRE_NOTIFY_URLS"]["valueFrom"]["secretKeyRef"] == {
        "name": "sapphire-notify",
        "key": "urls",
    }
    role = find(rendered, "Role", "sapphire-notify")
    assert role["rules"] == [
        {
            "apiGroups": ["trading.sapphire-ai.com"],
            "resources": ["tradingagents", "migrationruns"],
            "verbs": ["get", "list"],
        }
    ]
    binding = find(rendered, "RoleBinding", "sapphire-notify")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "sapphire-notify", "namespace": "trading"}
    ]
    assert pod["serviceAccountName"] == "sapphire-notify"


def test_the_news_feed_mounts_no_kubernetes_token_and_takes_its_feeds_from_a_configmap(
    rendered: list[Json],
) -> None:
    pod = find(rendered, "Deployment", "sapphire-news-feed")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    variables = env(container(pod, "news-feed"))
    news = find(rendered, "ConfigMap", "sapphire-news")
    assert yaml.safe_load(news["data"]["feed-urls"]) == []  # the overlay must set it: the feed refuses []
    assert variables["SAPPHIRE_NEWS_ALIASES"]["valueFrom"]["configMapKeyRef"]["optional"] is True
    assert variables["SAPPHIRE_AGENT_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "sapphire-agent-token"


def test_the_backtest_reports_claim_is_mounted_read_only_where_the_api_reads_it(
    tmp_path: Path,
) -> None:
    kustomization = {
        "namespace": "trading",
        "resources": [os.path.relpath(BASE, tmp_path)],
        "components": [os.path.relpath(COMPONENTS / "backtest-reports", tmp_path)],
    }
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    pod = find(render(tmp_path), "Deployment", "trader-api")["spec"]["template"]["spec"]
    api = container(pod, "trader-api")
    directory = env(api)["SAPPHIRE_BACKTEST_REPORTS_DIR"]["value"]
    assert "backtest_reports_dir" in TraderApiSettings.model_fields
    (mount,) = [m for m in api["volumeMounts"] if m["name"] == "backtest-reports"]
    assert mount == {"name": "backtest-reports", "mountPath": directory, "readOnly": True}
    (volume,) = [v for v in pod["volumes"] if v["name"] == "backtest-reports"]
    assert volume["persistentVolumeClaim"] == {"claimName": "backtest-reports", "readOnly": True}
    assert len(pod["containers"]) == 1  # the patch added to the API's container, not a new one


def test_the_market_feed_takes_its_source_from_a_configmap_and_may_reach_only_the_api(
    rendered: list[Json],
) -> None:
    pod = find(rendered, "Deployment", "sapphire-market-feed")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    variables = env(container(pod, "market-feed"))
    assert variables["SAPPHIRE_AGENT_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "sapphire-agent-token",
        "key": "token",
    }
    source = variables["SAPPHIRE_FEED_SOURCE"]["valueFrom"]["configMapKeyRef"]
    configmap = find(rendered, "ConfigMap", source["name"])
    assert configmap["data"][source["key"]] == "simulated"
    egress = find(rendered, "NetworkPolicy", "market-feed-egress")["spec"]
    assert egress["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "market-feed"
    ports = sorted(port["port"] for rule in egress["egress"] for port in rule["ports"])
    assert ports == [53, 53, 8000]
