"""BacktestRuns replay agents of the namespace (or written inline) in a pod on the process node,
fetch their history over HTTP, and put the headline into status and the report on a claim."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from sapphire.backtest import command, sample
from tests.support import http_server, kube
from tests.support import operator as operator_support

pytestmark = pytest.mark.k8s

StartOperator = Callable[..., operator_support.OperatorProcess]
GROUP_PATH = "/apis/trading.sapphire-ai.com/v1alpha1"
EXAMPLES = kube.REPOSITORY / "manifests" / "examples"
START, END = "2026-01-05T00:30:00Z", "2026-01-05T01:30:00Z"
"""One hour of the three hours served: a few seconds of replay."""


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return document


def backtest(name: str, url: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "trading.sapphire-ai.com/v1alpha1",
        "kind": "BacktestRun",
        "metadata": {"name": name},
        "spec": {
            "agents": [
                {"name": "momentum", "tradingAgentRef": "momentum"},
                {"name": "executor", "spec": example("executor")["spec"]},
            ],
            "data": {"url": url},
            "start": START,
            "end": END,
            "ttlSecondsAfterFinished": 0,
            **spec,
        },
    }


def run_path(namespace: str, name: str) -> str:
    return f"{GROUP_PATH}/namespaces/{namespace}/backtestruns/{name}"


phase_in = operator_support.phase_in


@pytest.fixture(scope="module")
def bars() -> bytes:
    return sample.synthetic_bars(days=0.125).encode()


@pytest.fixture
def history_server(bars: bytes) -> Iterator[http_server.LocalHttpServer]:
    with http_server.local_http_server() as server:
        server.routes["/history/bars.csv"] = lambda _: http_server.Response(200, bars)
        yield server


def local_report(directory: Path, bars: bytes) -> tuple[dict[str, Any], bytes]:
    """The same backtest through ``sapphire backtest``'s own code on this machine."""
    (directory / "agents").mkdir()
    for name, document in (("momentum", example("momentum")), ("executor", example("executor"))):
        (directory / "agents" / f"{name}.yaml").write_text(yaml.safe_dump(document))
    (directory / "bars.csv").write_bytes(bars)
    options = command.Options(
        path=directory / "agents",
        data=directory / "bars.csv",
        start=command.parse_time(START, "--from"),
        end=command.parse_time(END, "--to"),
        output=directory / "report",
        progress=False,
    )
    built = command.run(options, Console(quiet=True))
    return built, (directory / "report" / "report.json").read_bytes()


def test_a_backtest_waits_for_its_agent_then_reports_what_sapphire_backtest_reports(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    history_server: http_server.LocalHttpServer,
    bars: bytes,
    tmp_path: Path,
) -> None:
    start_operator()
    url = f"{history_server.url}/history/bars.csv"
    sha256 = hashlib.sha256(bars).hexdigest()
    manifest = backtest("tuesday", url, data={"url": url, "sha256": sha256}, reportClaimName="reports")
    kube.apply(control_plane, manifest, namespace)
    pending = kube.wait_for(control_plane, run_path(namespace, "tuesday"), phase_in("Pending"), timeout=60)
    assert pending["status"]["message"] == "waiting for TradingAgent momentum in this namespace"
    assert history_server.received("/history/bars.csv") == []  # nothing ran yet
    momentum = example("momentum")
    momentum["spec"]["paused"] = True  # a paused agent is backtested too (and starts no pod here)
    kube.apply(control_plane, momentum, namespace)

    body = kube.wait_for(
        control_plane, run_path(namespace, "tuesday"), phase_in("Succeeded", "Failed"), timeout=120
    )
    status = body["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    built, report_bytes = local_report(tmp_path, bars)
    figures = built["metrics"]
    assert figures["fills"] > 0  # the executor traded: equal figures mean something
    assert (status["totalReturn"], status["sharpe"], status["maxDrawdown"]) == (
        figures["total_return"],
        figures["sharpe"],
        figures["max_drawdown"]["depth"],
    )
    assert (status["trades"], status["fees"], status["finalEquity"]) == (
        figures["trades"],
        figures["fees"],
        figures["final_equity"],
    )
    assert (status["quotes"], status["dataSha256"]) == (built["data"]["quotes"], sha256)
    assert status["agents"] == ["momentum", "executor"]
    assert status["report"] == "persistentVolumeClaim/reports/tuesday/report.json"
    assert control_plane.node is not None
    on_claim = control_plane.node.claim_directory(namespace, "reports") / "tuesday"
    assert (on_claim / "report.json").read_bytes() == report_bytes  # byte-identical to the local run
    assert (on_claim / "report.html").stat().st_size > 0

    output = control_plane.kubectl("get", "backtestruns", "-n", namespace).stdout
    head, row = output.splitlines()
    assert head.split() == ["NAME", "PHASE", "RETURN", "SHARPE", "MAX-DD", "TRADES", "AGE"]
    assert row.split()[:2] == ["tuesday", "Succeeded"]
    kube.wait_for(
        control_plane,
        run_path(namespace, "tuesday"),
        lambda b: b["status"].get("cleanedUp") is True,
        timeout=30,
        what="the backtest pod to be deleted",
    )
    selector = "trading.sapphire-ai.com/backtestrun=tuesday"
    pods = control_plane.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "name").stdout
    assert pods.split() == []


def test_a_backtest_whose_data_cannot_be_fetched_fails_naming_the_option(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    history_server: http_server.LocalHttpServer,
) -> None:
    start_operator()
    inline = {"name": "momentum", "spec": example("momentum")["spec"]}
    url = f"{history_server.url}/history/missing.csv"
    kube.apply(control_plane, backtest("lost", url, agents=[inline]), namespace)
    body = kube.wait_for(
        control_plane, run_path(namespace, "lost"), phase_in("Succeeded", "Failed"), timeout=120
    )
    status = body["status"]
    assert status["phase"] == "Failed"
    assert f"--data: cannot download {url}: HTTP 404" in status["message"]
    assert "BacktestFailed" in {c["reason"] for c in status["conditions"]}
    assert "totalReturn" not in status
    assert len(history_server.received("/history/missing.csv")) == 1  # a 404 is not retried
    events = control_plane.kubectl(
        "get", "events", "-n", namespace, "--field-selector=involvedObject.name=lost"
    )
    assert "BacktestFailed" in events.stdout


def test_the_api_server_refuses_a_changed_spec(
    control_plane: kube.ControlPlane, namespace: str, installed_crds: list[str]
) -> None:
    kube.apply(control_plane, backtest("record", "https://example.com/bars.csv"), namespace)
    patch = {"spec": {"timeframeSeconds": 300}}
    result = control_plane.kubectl(
        "patch",
        "backtestrun",
        "record",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps(patch),
        check=False,
    )
    assert result.returncode != 0
    assert "spec is immutable: a BacktestRun records one backtest" in result.stderr
