"""An agent pod serves /metrics when the operator gives it a port (the monitoring
component's PodMonitor scrapes it): the LLM guard's calls and latency are there."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support import processes


@contextlib.contextmanager
def agent_metrics_page() -> Iterator[str]:
    """The /metrics page of a real ``sapphire agent run`` (momentum) while it runs."""
    port = processes.free_port()
    assert not processes.port_open(port)  # nothing listens before the agent starts
    env = {
        **os.environ,
        "SAPPHIRE_METRICS_PORT": str(port),
        "SAPPHIRE_ROLE": "momentum",
        "SAPPHIRE_AGENT_TOKEN": "agent-token-for-metrics",
        # Neither is reachable: the agent retries them with backoff while /metrics answers.
        "SAPPHIRE_TRADER_API_URL": f"http://127.0.0.1:{processes.free_port()}",
        "SAPPHIRE_REDIS_URL": f"redis://127.0.0.1:{processes.free_port()}/0",
    }
    command = [str(Path(sys.executable).parent / "sapphire"), "agent", "run"]
    agent = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        processes.wait_until(lambda: processes.port_open(port), timeout=30, what="the agent's /metrics")
        yield httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        processes.stop_process(agent)


def test_sapphire_agent_run_serves_the_llm_metrics_on_its_metrics_port() -> None:
    with agent_metrics_page() as text:
        pass
    assert "# TYPE sapphire_llm_calls_total counter" in text
    assert "# TYPE sapphire_llm_call_seconds histogram" in text
