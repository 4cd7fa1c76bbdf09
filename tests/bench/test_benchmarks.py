"""Every benchmark runs end to end at a tiny size, so that ``make bench`` cannot rot between
full runs. The figures of these runs mean nothing; the shape of the report is what is tested."""

from __future__ import annotations

import collections
import json
import time
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

from bench import (
    backtest,
    environment,
    fleet,
    http,
    ingest,
    operator_scale,
    order_intake,
    procstat,
    report,
    tick_to_order,
)
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


ORDER_INTAKE_KEYS = {
    # cpu_postgres_* is there only when Postgres is a local process (not with TEST_DATABASE_URL elsewhere).
    "figures": {"ack_p50_1_clients", "ack_p99.9_8_clients", "cpu_api_ms_per_order_8_clients"}
    | {"cpu_client_ms_per_order_8_clients", "non_201_8_clients"},
    "floor": {
        "single_row_inserts_per_s",
        "group_commit_rows_per_s_32_per_commit",
        "http_posts_per_s_8_clients",
    },
    "ratios": {"orders_over_http_floor_8_clients"},
}


TICK_TO_ORDER_KEYS = {
    # Every process has its CPU: the API, Redis, this client, the feed and each analyst process.
    "figures": {"stage_tick_to_signal_sent_p50", "stage_order_round_trip_p99", "stage_ingest_ack_p50"}
    | {"cpu_api_cores", "cpu_redis_cores", "cpu_client_cores", "cpu_feed_cores", "background_ticks_per_s"}
    | {f"cpu_agent_{role}_cores" for role in fleet.ANALYSTS if role != "momentum"},
    "floor": {"redis_pubsub_p50", "http_round_trip_p50", "durable_commit_p50", "sum_of_floors_p50"},
    "ratios": {"p50_over_sum_of_floors"},
}
INGEST_KEYS = {
    "figures": {"cpu_api_cores", "cpu_redis_cores", "cpu_agent_executor_cores"}
    | {f"cpu_agent_{role}_cores" for role in fleet.ANALYSTS},
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("module", "headline", "keys"),
    [
        (tick_to_order, "p50", TICK_TO_ORDER_KEYS),
        (order_intake, "orders_per_s", ORDER_INTAKE_KEYS),
        (ingest, "ticks_per_s", INGEST_KEYS),
        (backtest, "quotes_per_s", {"floor": {"tick_pass_quotes_per_s"}, "ratios": {"replay_over_floor"}}),
    ],
    ids=["tick_to_order", "order_intake", "ingest", "backtest"],
)
async def test_a_benchmark_reports_its_figures_floor_ratios_and_profile(
    module: ModuleType,
    headline: str,
    keys: dict[str, set[str]],
    bench_services: environment.Services,
    tmp_path: Path,
) -> None:
    result = await module.run(bench_services, module.SMOKE, results=tmp_path, profile=True)
    body = written(result, tmp_path)
    for section, wanted in keys.items():
        got = body[section]
        assert isinstance(got, dict)
        assert wanted <= set(got), sorted(wanted - set(got))
    figures = body["figures"]
    assert isinstance(figures, dict)
    assert figures[headline]["value"] > 0
    assert all(f["value"] >= 0 for f in figures.values()), figures
    assert body["targets"], "targets are reported"
    if body["profile"]:  # a missed target comes with its profile
        assert "Samples:" in (tmp_path / str(body["profile"])).read_text()


def test_order_intake_rests_a_book_that_cannot_trade_and_sends_orders_that_do() -> None:
    instruments = {i.symbol: i for i in order_intake.INSTRUMENTS}
    collar = Decimal(order_intake.RISK["price_collar_bps"]) / 10_000
    assert len(instruments) == 20
    sides: collections.Counter[tuple[str, str]] = collections.Counter()
    for index in range(order_intake.FULL.resting_orders):
        order = order_intake.resting_body(index)
        instrument, price = instruments[order["symbol"]], Decimal(order["limit_price"])
        mid = (instrument.bid + instrument.ask) / 2
        assert order["time_in_force"] == "gtc"
        assert price % order_intake.TICK == 0
        assert abs(price - mid) / mid < collar
        assert (
            price < instrument.bid * Decimal("0.96")
            if order["side"] == "buy"
            else price > instrument.ask * Decimal("1.04")
        )
        sides[order["symbol"], order["side"]] += 1
    assert set(sides.values()) == {25}, sides  # 50 resting orders a symbol, half on each side
    last: dict[str, str] = {}
    for index in range(200):
        order = order_intake.ioc_body(index)
        instrument, price = instruments[order["symbol"]], Decimal(order["limit_price"])
        assert order["time_in_force"] == "ioc"
        assert abs(price - instrument.ask) / instrument.ask < collar
        assert price >= instrument.ask if order["side"] == "buy" else price <= instrument.bid
        assert last.get(order["symbol"]) != order["side"]  # each symbol alternates buy and sell
        last[order["symbol"]] = order["side"]


def test_order_intake_fails_loudly_when_more_than_one_per_cent_is_refused() -> None:
    def level(refused: int) -> order_intake.Level:
        statuses = [201] * (100 - refused) + [422] * refused
        bodies = [b"{}"] * (100 - refused) + [b'{"detail":"refused by risk"}'] * refused
        return order_intake.Level(8, http.Answers(1.0, statuses, bodies, [1_000_000] * 100))

    order_intake.check(level(1), "POST /v1/orders")
    with pytest.raises(RuntimeError, match=r"2 of 100 .* 422 .*refused by risk"):
        order_intake.check(level(2), "POST /v1/orders")


def test_cpu_seconds_are_read_from_proc() -> None:
    before = procstat.own_seconds()
    deadline = time.perf_counter() + 0.2
    while time.perf_counter() < deadline:
        pass
    assert procstat.own_seconds() - before >= 0.1
    me = procstat.stat()
    assert me is not None
    assert procstat.tree_seconds(me.pid) >= me.own / procstat.TICK


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
    # CPU is read in clock ticks (10 ms): a process that idled through a smoke burst reads 0.
    cpu = {name: f["value"] for name, f in figures.items() if name.startswith("burst_cpu_")}
    assert cpu["burst_cpu_operator"] > 0, cpu
    assert cpu["burst_cpu_kube_apiserver"] > 0, cpu
    assert all(f["value"] > 0 for name, f in figures.items() if name not in cpu), figures
    floor = body["floor"]
    assert isinstance(floor, dict)
    assert floor["burst_kubectl_apply_bare_deployments"]["value"] > 0
    versions = body["versions"]
    assert isinstance(versions, dict)
    assert str(versions["kubernetes"]).startswith("v1.")
