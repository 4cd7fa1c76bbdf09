"""The alert rules and the Grafana dashboard name only series that the running processes
really serve on ``/metrics``: a real ``sapphire api``, a real ``sapphire agent run``, and the
operator's metrics server (the function ``sapphire operator`` starts it with).

``tests/manifests/test_monitoring.py`` checks the names and labels against the registries;
this checks those registries are what the processes serve."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import parser

from sapphire.operator import metrics as operator_metrics
from tests.agents.test_metrics_endpoint import agent_metrics_page
from tests.manifests.test_monitoring import SERIES, expressions
from tests.support import processes, trader_api

SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}


def served(text: str) -> set[str]:
    """Every series name a /metrics page declares (families without samples included)."""
    names: set[str] = set()
    for family in parser.text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


@pytest.fixture
def agent_metrics() -> Iterator[str]:
    with agent_metrics_page() as text:
        yield text


def operator_metrics_page() -> str:
    port = processes.free_port()
    operator_metrics.serve(port, host="127.0.0.1")
    processes.wait_until(lambda: processes.port_open(port), timeout=10, what="the operator's /metrics")
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def test_every_series_in_the_rules_and_the_dashboard_is_on_a_real_metrics_page(
    trader_database_url: str, redis_url: str, redis_prefix: str, agent_metrics: str
) -> None:
    with trader_api.running_trader_api(
        database_url=trader_database_url, redis_url=redis_url, redis_key_prefix=redis_prefix
    ) as api:
        api_page = httpx.get(f"{api.url}/metrics", timeout=10).text
    pages = {
        "trader API": served(api_page),
        "agent": served(agent_metrics),
        "operator": served(operator_metrics_page()),
    }
    # The newest metrics are there: the venue's reconciliation and the operator's API requests.
    assert "sapphire_venue_reconciliation_differences_total" in pages["trader API"]
    assert "sapphire_operator_api_requests_total" in pages["operator"]
    assert "sapphire_llm_calls_total" in pages["agent"]
    everything = set().union(*pages.values())
    named = {
        match["name"]: where
        for where, expr in expressions()
        for match in SERIES.finditer(expr)
        if match["name"] != "up"  # Prometheus's own series for each target
    }
    missing = {name: where for name, where in named.items() if name not in everything}
    assert missing == {}
    print(f"\n{len(named)} series named by the rules and the dashboard, all served:")
    for source, names in pages.items():
        print(f"  {source}: {sorted(name for name in named if name in names)}")
