"""BacktestRuns replay agents of the namespace (or written inline) in a pod on the process node,
fetch their history over HTTP, and put the headline into status and the report on a claim."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
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


def finished(control_plane: kube.ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    """The BacktestRun ``name`` once it is Succeeded or Failed."""
    return kube.wait_for(
        control_plane, run_path(namespace, name), phase_in("Succeeded", "Failed"), timeout=120
    )


def backtest_pods(control_plane: kube.ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    """The pods of BacktestRun ``name``, as the API server has them."""
    selector = f"trading.sapphire-ai.com/backtestrun={name}"
    output = control_plane.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
    pods: list[dict[str, Any]] = json.loads(output)["items"]
    return pods


def inline_momentum() -> dict[str, Any]:
    """The example momentum agent written inline: no TradingAgent to create first."""
    return {"name": "momentum", "spec": example("momentum")["spec"]}


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

    body = finished(control_plane, namespace, "tuesday")
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
    inline = inline_momentum()
    url = f"{history_server.url}/history/missing.csv"
    kube.apply(control_plane, backtest("lost", url, agents=[inline]), namespace)
    body = finished(control_plane, namespace, "lost")
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


def test_a_parallel_backtest_runs_one_pod_per_slice_and_chains_their_figures(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    history_server: http_server.LocalHttpServer,
) -> None:
    start_operator()
    kube.apply(control_plane, example("momentum"), namespace)
    url = f"{history_server.url}/history/bars.csv"
    manifest = backtest("halves", url, parallelism=2, reportClaimName="reports", ttlSecondsAfterFinished=300)
    kube.apply(control_plane, manifest, namespace)
    body = finished(control_plane, namespace, "halves")
    status = body["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    first, second = status["slices"]
    assert (first["slice"], first["start"], first["end"]) == (1, START, "2026-01-05T01:00:00Z")
    assert (second["slice"], second["start"], second["end"]) == (2, "2026-01-05T01:00:00Z", END)
    assert (first["phase"], second["phase"]) == ("Succeeded", "Succeeded")
    assert (first["podName"], second["podName"]) == ("halves-1", "halves-2")

    # Each slice's figures are its own pod's report, which replayed only its half of the hour.
    assert control_plane.node is not None
    on_claim = control_plane.node.claim_directory(namespace, "reports") / "halves"
    for entry in (first, second):
        report = json.loads((on_claim / str(entry["slice"]) / "report.json").read_text())
        assert entry["report"] == f"persistentVolumeClaim/reports/halves/{entry['slice']}/report.json"
        replayed = [datetime.fromisoformat(report["data"][key]) for key in ("from", "to")]
        assert datetime.fromisoformat(entry["start"]) <= replayed[0] <= replayed[1]
        assert replayed[1] < datetime.fromisoformat(entry["end"])
        figures = report["metrics"]
        assert (entry["totalReturn"], entry["maxDrawdown"], entry["trades"], entry["fees"]) == (
            figures["total_return"],
            figures["max_drawdown"]["depth"],
            figures["trades"],
            figures["fees"],
        )
        assert entry["quotes"] == report["data"]["quotes"] > 0
    assert int(first["trades"]) + int(second["trades"]) > 0  # something traded: the sums mean something

    # The run's figures chain the slices': compounded return, summed counts, worst drawdown.
    compounded = (1 + Decimal(first["totalReturn"])) * (1 + Decimal(second["totalReturn"])) - 1
    assert Decimal(status["totalReturn"]) == compounded.quantize(Decimal("0.000001"), ROUND_HALF_EVEN)
    assert status["trades"] == first["trades"] + second["trades"]
    assert Decimal(status["fees"]) == Decimal(first["fees"]) + Decimal(second["fees"])
    assert status["quotes"] == first["quotes"] + second["quotes"]
    assert status["maxDrawdown"] == max(first["maxDrawdown"], second["maxDrawdown"], key=Decimal)
    assert "sharpe" not in status
    assert "finalEquity" not in status
    assert "sharpe" in first
    assert "finalEquity" in first
    assert status["report"] == "persistentVolumeClaim/reports/halves/"
    assert status["message"].startswith("2 slices chained: return ")

    pods = backtest_pods(control_plane, namespace, "halves")
    assert sorted(
        (pod["metadata"]["name"], pod["metadata"]["labels"]["trading.sapphire-ai.com/slice"]) for pod in pods
    ) == [("halves-1", "1"), ("halves-2", "2")]
    assert {ref["uid"] for pod in pods for ref in pod["metadata"]["ownerReferences"]} == {
        body["metadata"]["uid"]
    }
    output = control_plane.kubectl("get", "backtestruns", "-n", namespace).stdout
    print(output, yaml.safe_dump({"status": {"slices": status["slices"]}}), sep="\n")  # shown with -s
    (row,) = kube.table_rows(output)
    assert row == {
        "NAME": "halves",
        "PHASE": "Succeeded",
        "RETURN": status["totalReturn"],
        "SHARPE": "",  # no Sharpe ratio for chained slices
        "MAX-DD": status["maxDrawdown"],
        "TRADES": str(status["trades"]),
        "AGE": row["AGE"],
    }


def test_a_parallel_backtest_fails_naming_the_slice_that_failed(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    history_server: http_server.LocalHttpServer,
) -> None:
    start_operator()
    inline = inline_momentum()
    url = f"{history_server.url}/history/bars.csv"
    # The data ends at 03:00: the second slice, 03:00 to 04:00, has no quotes.
    manifest = backtest(
        "overrun",
        url,
        agents=[inline],
        start="2026-01-05T02:00:00Z",
        end="2026-01-05T04:00:00Z",
        parallelism=2,
    )
    kube.apply(control_plane, manifest, namespace)
    body = finished(control_plane, namespace, "overrun")
    status = body["status"]
    assert status["phase"] == "Failed"
    assert status["message"].startswith(
        "slice 2 of 2 (2026-01-05T03:00:00Z to 2026-01-05T04:00:00Z) failed: exit code "
    )
    assert status["message"].endswith("no quotes between --from and --to")
    first, second = status["slices"]
    assert second["phase"] == "Failed"
    assert "no quotes between --from and --to" in second["message"]
    # The first slice either finished before the second failed or was stopped then; never left running.
    assert first["phase"] == "Succeeded" or first == {
        **first,
        "phase": "Failed",
        "message": "stopped: slice 2 failed",
    }
    assert "totalReturn" not in status
    assert "BacktestFailed" in {c["reason"] for c in status["conditions"]}


def test_a_grid_backtest_runs_one_pod_per_trial_with_its_settings_and_reports_the_best(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    history_server: http_server.LocalHttpServer,
) -> None:
    start_operator()
    momentum = example("momentum")
    kube.apply(control_plane, momentum, namespace)
    executor = example("executor")["spec"]
    url = f"{history_server.url}/history/bars.csv"
    grid = [
        {"agent": "momentum", "parameter": "intervalSeconds", "values": ["30", "300"]},
        {"agent": "executor", "parameter": "risk.maxOrderNotional", "values": ["250", "1000"]},
    ]
    manifest = backtest(
        "sweep", url, grid=grid, parallelism=2, reportClaimName="reports", ttlSecondsAfterFinished=300
    )
    kube.apply(control_plane, manifest, namespace)
    body = finished(control_plane, namespace, "sweep")
    status = body["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    trials = status["trials"]
    expected = [("30", "250"), ("30", "1000"), ("300", "250"), ("300", "1000")]  # the last axis fastest
    assert [(t["trial"], tuple(p["value"] for p in t["parameters"])) for t in trials] == [
        (number, values) for number, values in enumerate(expected, start=1)
    ]
    assert [t["phase"] for t in trials] == ["Succeeded"] * 4

    # One pod per trial, given the agents with its settings and nothing else changed.
    pods = backtest_pods(control_plane, namespace, "sweep")
    by_trial = {int(pod["metadata"]["labels"]["trading.sapphire-ai.com/trial"]): pod for pod in pods}
    assert sorted(by_trial) == [1, 2, 3, 4]
    for (interval, notional), entry in zip(expected, trials, strict=True):
        pod = by_trial[entry["trial"]]
        assert pod["metadata"]["name"] == entry["podName"] == f"sweep-{entry['trial']}"
        (container,) = pod["spec"]["containers"]
        given = next(e["value"] for e in container["env"] if e["name"] == "SAPPHIRE_BACKTEST_AGENTS")
        agents = {d["metadata"]["name"]: d["spec"] for d in yaml.safe_load_all(given)}
        assert agents["momentum"] == {**momentum["spec"], "intervalSeconds": int(interval)}
        written = {key: value for key, value in agents["executor"].items() if key in executor}  # not defaults
        assert written == {**executor, "risk": {**executor["risk"], "maxOrderNotional": notional}}
        # ... and the replay ran with them: the trial's own report on the claim says so.
        assert control_plane.node is not None
        on_claim = (
            control_plane.node.claim_directory(namespace, "reports") / "sweep" / f"trial-{entry['trial']}"
        )
        assert entry["report"] == f"persistentVolumeClaim/reports/sweep/trial-{entry['trial']}/report.json"
        report = json.loads((on_claim / "report.json").read_text())
        replayed = {agent["name"]: agent["interval_seconds"] for agent in report["agents"]}
        assert replayed["momentum"] == int(interval)
        figures = report["metrics"]
        assert (entry["totalReturn"], entry["sharpe"], entry["trades"], entry["finalEquity"]) == (
            figures["total_return"],
            figures["sharpe"],
            figures["trades"],
            figures["final_equity"],
        )
    # parallelism 2: the third and fourth trials' pods came only once an earlier one had finished.
    first_done = min(
        by_trial[n]["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"] for n in (1, 2)
    )
    assert by_trial[3]["metadata"]["creationTimestamp"] >= first_done
    assert by_trial[4]["metadata"]["creationTimestamp"] >= first_done

    # The run's figures are the best trial's by totalReturn (the first of equals).
    returns = [Decimal(t["totalReturn"]) for t in trials]
    assert len(set(returns)) > 1  # the settings changed the result: "best" means something
    best = trials[returns.index(max(returns))]
    assert status["bestTrial"] == best["trial"]
    keys = ("totalReturn", "sharpe", "maxDrawdown", "trades", "fees", "finalEquity", "quotes", "dataSha256")
    assert {key: status.get(key) for key in keys} == {key: best.get(key) for key in keys}
    assert status["message"].startswith(f"best of 4 trials by totalReturn: trial {best['trial']} of 4 (")
    assert status["report"] == "persistentVolumeClaim/reports/sweep/"
    output = control_plane.kubectl("get", "backtestruns", "-n", namespace, "-o", "wide").stdout
    print(output, yaml.safe_dump({"status": {"trials": trials}}), sep="\n")  # shown with -s
    (row,) = kube.table_rows(output)
    assert (row["RETURN"], row["SHARPE"], row["TRADES"], row["BEST-TRIAL"]) == (
        best["totalReturn"],
        best["sharpe"],
        str(best["trades"]),
        str(best["trial"]),
    )


def test_a_grid_whose_trial_the_agents_spec_refuses_fails_naming_the_axis_before_any_pod(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    history_server: http_server.LocalHttpServer,
) -> None:
    start_operator()
    kube.apply(control_plane, example("momentum"), namespace)
    url = f"{history_server.url}/history/bars.csv"
    # The API server admits "2" (whole seconds); the TradingAgent spec wants at least 5.
    grid = [{"agent": "momentum", "parameter": "intervalSeconds", "values": ["30", "2"]}]
    kube.apply(control_plane, backtest("too-fast", url, grid=grid), namespace)
    status = finished(control_plane, namespace, "too-fast")["status"]
    assert status["phase"] == "Failed"
    assert status["message"] == (
        "grid[0] (momentum.intervalSeconds=2): agent momentum: spec.intervalSeconds: "
        "Input should be greater than or equal to 5"
    )
    assert "InvalidGrid" in {c["reason"] for c in status["conditions"]}
    assert "trials" not in status
    assert backtest_pods(control_plane, namespace, "too-fast") == []  # not even the valid trial ran
    assert history_server.received("/history/bars.csv") == []
