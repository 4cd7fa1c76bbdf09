"""The generated CRDs on a real kube-apiserver: installed, documented, and refusing bad objects.

These run the files a user runs: ``kubectl apply -f crds/``, ``-f manifests/examples/`` and the
invalid corpus, and read what ``kubectl get`` and ``kubectl explain`` print.
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import pytest
import yaml

from sapphire.resources import common, crdgen, manifests, migrationrun, tradingagent
from tests.crds.conftest import CRDS, EXAMPLES, INVALID
from tests.support import kube

pytestmark = [pytest.mark.k8s, pytest.mark.usefixtures("installed_crds")]

INVALID_FILES = sorted(INVALID.glob("*.yaml"))


def expected_message(path: Path) -> str:
    match = re.search(r"^# expect: (.+)$", path.read_text(), re.M)
    assert match, f"{path.name} has no '# expect:' line"
    return match.group(1).strip()


def header(output: str) -> list[str]:
    return output.splitlines()[0].split()


def test_the_crds_are_established(control_plane: kube.ControlPlane, installed_crds: list[str]) -> None:
    for name in installed_crds:
        crd = json.loads(control_plane.kubectl("get", "crd", name, "-o", "json").stdout)
        established = [c for c in crd["status"]["conditions"] if c["type"] == "Established"]
        assert established[0]["status"] == "True"
    assert sorted(installed_crds) == sorted(
        path.name.removesuffix(".yaml") + "." + "trading.sapphire-ai.com" for path in CRDS.glob("*.yaml")
    )


def test_every_example_is_accepted(control_plane: kube.ControlPlane, namespace: str) -> None:
    output = control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES)).stdout
    expected = [
        resource.metadata.name
        for resource in map(manifests.parse_resource, manifests.load_documents(EXAMPLES))
    ]
    for name in expected:
        assert f"/{name} created" in output


def test_the_backtestrun_examples_are_accepted(control_plane: kube.ControlPlane, namespace: str) -> None:
    backtest = EXAMPLES.parent / "backtest" / "backtestrun-examples.yaml"
    output = control_plane.kubectl("apply", "-n", namespace, "-f", str(backtest)).stdout
    assert output.split("\n")[:2] == [
        "backtestrun.trading.sapphire-ai.com/momentum-sample-day created",
        "backtestrun.trading.sapphire-ai.com/momentum-grid-day created",
    ]


@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda path: path.stem)
def test_each_invalid_manifest_is_refused_naming_the_field(
    control_plane: kube.ControlPlane, namespace: str, path: Path
) -> None:
    result = control_plane.kubectl("apply", "-n", namespace, "-f", str(path), check=False)
    assert result.returncode != 0, f"{path.name} was accepted: {result.stdout}"
    assert expected_message(path) in result.stderr


def test_the_api_server_defaults_agree_with_the_model(
    control_plane: kube.ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "executor.yaml"))
    stored = json.loads(
        control_plane.kubectl("get", "-n", namespace, "tradingagent", "executor", "-o", "json").stdout
    )
    local = yaml.safe_load((EXAMPLES / "executor.yaml").read_text())
    assert stored["spec"]["intervalSeconds"] == 60
    assert tradingagent.TradingAgentSpec.model_validate(
        stored["spec"]
    ) == tradingagent.TradingAgentSpec.model_validate(local["spec"])


def test_kubectl_get_tradingagents_prints_the_designed_columns(
    control_plane: kube.ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "microstructure-all-market.yaml"))
    # What the operator will write: the model's own status, through the status subresource.
    status = tradingagent.TradingAgentStatus(
        phase=tradingagent.TradingAgentPhase.RUNNING,
        symbols_summary=tradingagent.summarize_symbols([]),
        ready_replicas=1,
        conditions=common.set_condition(
            [],
            type=tradingagent.TradingAgentConditionType.READY,
            status=common.ConditionStatus.TRUE,
            reason="DeploymentAvailable",
            message="1 of 1 replicas ready",
            observed_generation=1,
            now=datetime.datetime.now(datetime.UTC),
        ),
    )
    control_plane.kubectl(
        "patch",
        "-n",
        namespace,
        "tradingagent",
        "microstructure-all-market",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status.to_wire()}),
    )
    output = control_plane.kubectl("get", "-n", namespace, "tradingagents").stdout
    assert header(output) == ["NAME", "ROLE", "SYMBOLS", "MODEL", "PHASE", "READY", "LAST-SIGNAL", "AGE"]
    (row,) = kube.table_rows(output)
    assert row["NAME"] == "microstructure-all-market"
    assert (row["ROLE"], row["SYMBOLS"], row["MODEL"], row["PHASE"]) == (
        "microstructure",
        "ALL",
        "",
        "Running",
    )


def test_kubectl_get_migrationruns_prints_the_designed_columns(
    control_plane: kube.ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "migrationrun-head.yaml"))
    output = control_plane.kubectl("get", "-n", namespace, "mr").stdout
    assert header(output) == ["NAME", "TARGET", "PHASE", "FROM", "TO", "ATTEMPTS", "AGE"]


def test_kubectl_get_sapphire_lists_both_kinds(control_plane: kube.ControlPlane, namespace: str) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES))
    output = control_plane.kubectl("get", "-n", namespace, "sapphire").stdout
    assert "tradingagent.trading.sapphire-ai.com/executor" in output
    assert "migrationrun.trading.sapphire-ai.com/trading-to-head" in output


def test_kubectl_explain_documents_the_risk_limits(control_plane: kube.ControlPlane) -> None:
    output = control_plane.kubectl("explain", "tradingagent.spec.risk").stdout
    assert "Pre-trade risk limits" in output
    for field in ("maxOrderNotional", "maxPositionNotional", "maxGrossExposure", "maxDailyLoss"):
        assert field in output
    assert "Largest notional" in output


def test_kubectl_explain_documents_the_protective_distances(control_plane: kube.ControlPlane) -> None:
    for field, words in (
        ("stopLossBps", "OCO group"),
        ("takeProfitBps", "in the position's favour"),
        ("trailingStopBps", "exclusive with stopLossBps"),
    ):
        output = control_plane.kubectl("explain", f"tradingagent.spec.risk.{field}").stdout
        assert words in " ".join(output.split()), output


def test_kubectl_explain_documents_the_migration_sidecars(control_plane: kube.ControlPlane) -> None:
    output = control_plane.kubectl("explain", "migrationrun.spec.sidecars").stdout
    assert "native sidecar" in output.lower() or "Native sidecars" in output


def test_the_role_of_an_agent_is_immutable(control_plane: kube.ControlPlane, namespace: str) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "momentum.yaml"))
    result = control_plane.kubectl(
        "patch",
        "-n",
        namespace,
        "tradingagent",
        "momentum",
        "--type=merge",
        "-p",
        '{"spec":{"role":"volatility"}}',
        check=False,
    )
    assert result.returncode != 0
    assert "spec.role: Forbidden: role is immutable" in result.stderr


def test_a_migration_run_is_an_immutable_record(control_plane: kube.ControlPlane, namespace: str) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "migrationrun-head.yaml"))
    result = control_plane.kubectl(
        "patch",
        "-n",
        namespace,
        "migrationrun",
        "trading-to-head",
        "--type=merge",
        "-p",
        '{"spec":{"revision":"0001"}}',
        check=False,
    )
    assert result.returncode != 0
    assert "spec is immutable" in result.stderr


def test_the_status_the_operator_writes_for_a_migration_is_accepted(
    control_plane: kube.ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "migrationrun-head.yaml"))
    status = migrationrun.MigrationRunStatus.model_validate(
        {
            "phase": "Succeeded",
            "fromRevision": "0001",
            "toRevision": "0002",
            "attempts": 1,
            "conditions": [
                {
                    "type": "Complete",
                    "status": "True",
                    "reason": "MigrationSucceeded",
                    "message": "",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                }
            ],
        }
    )
    control_plane.kubectl(
        "patch",
        "-n",
        namespace,
        "migrationrun",
        "trading-to-head",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status.to_wire()}),
    )
    row = control_plane.kubectl(
        "get", "-n", namespace, "mr", "trading-to-head", "--no-headers"
    ).stdout.split()
    assert row[:6] == ["trading-to-head", "head", "Succeeded", "0001", "0002", "1"]


def test_the_generated_crds_are_what_is_installed(control_plane: kube.ControlPlane) -> None:
    for resource in crdgen.RESOURCES:
        crd = json.loads(control_plane.kubectl("get", "crd", resource.crd_name, "-o", "json").stdout)
        assert crd["spec"]["names"]["shortNames"] == list(resource.short_names)
