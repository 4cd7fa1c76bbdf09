"""Every benchmark runs end to end at a tiny size, so that ``make bench`` cannot rot between
full runs. The figures of these runs mean nothing; the shape of the report is what is tested."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from bench import environment, ingest, operator_scale, order_intake, report, tick_to_order
from tests.support import kube, services

KEYS = {
    "benchmark",
    "timestamp",
    "machine",
    "versions",
    "sizes",
    "method",
    "figures",
    "floor",
    "ratios",
    "targets",
}


@pytest.fixture
def bench_services(
    postgres_server: services.PostgresServer, redis_server: services.RedisServer
) -> environment.Services:
    return environment.Services(postgres=postgres_server, redis=redis_server)


def written(result: report.Report, directory: Path) -> dict[str, object]:
    body: dict[str, object] = json.loads(report.write(result, directory).read_text())
    assert set(body) >= KEYS, sorted(KEYS - set(body))
    machine = body["machine"]
    assert isinstance(machine, dict)
    assert machine["cpu_count"] >= 1
    versions = body["versions"]
    assert isinstance(versions, dict)
    assert {"python", "postgres", "redis"} <= set(versions)
    for section in ("floor", "ratios"):
        figures = body[section]
        assert isinstance(figures, dict)
        assert figures, f"{section} is empty"
        assert all(f["value"] > 0 for f in figures.values()), figures
    return body


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("module", "headline"),
    [(tick_to_order, "p50"), (order_intake, "orders_per_s"), (ingest, "ticks_per_s")],
    ids=["tick_to_order", "order_intake", "ingest"],
)
async def test_a_benchmark_reports_its_figures_floor_ratios_and_profile(
    module: ModuleType, headline: str, bench_services: environment.Services, tmp_path: Path
) -> None:
    result = await module.run(bench_services, module.SMOKE, results=tmp_path, profile=True)
    body = written(result, tmp_path)
    figures = body["figures"]
    assert isinstance(figures, dict)
    assert figures[headline]["value"] > 0
    assert all(f["value"] >= 0 for f in figures.values()), figures
    assert body["targets"], "targets are reported"
    if body["profile"]:  # a missed target comes with its profile
        assert "Samples:" in (tmp_path / str(body["profile"])).read_text()


@pytest.mark.k8s
@pytest.mark.timeout(900)
async def test_operator_scale_reports_burst_single_apply_and_migration_latencies(
    control_plane: kube.ControlPlane, bench_services: environment.Services, tmp_path: Path
) -> None:
    result = await operator_scale.run(
        bench_services, operator_scale.SMOKE, results=tmp_path, plane=control_plane
    )
    body = written(result, tmp_path)
    figures = body["figures"]
    assert isinstance(figures, dict)
    assert all(f["value"] > 0 for f in figures.values()), figures
    versions = body["versions"]
    assert isinstance(versions, dict)
    assert str(versions["kubernetes"]).startswith("v1.")
