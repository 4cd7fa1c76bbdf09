"""An agent's health comes from its loops: ready once every loop has made progress, unhealthy
once one has failed without a break for ``SAPPHIRE_HEALTH_FAILING_SECONDS``; an unhealthy agent
writes which loop died, and why, to its termination message and exits 1 to be restarted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from sapphire.agents import health
from tests.support import processes


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ready_once_every_loop_progressed_and_dead_once_one_fails_too_long() -> None:
    clock = Clock()
    loops = health.LoopHealth(failing_seconds=30, clock=clock)
    loops.register("market")
    loops.register("heartbeat")
    assert loops.not_ready() == ["no loop has made progress yet"]
    loops.progress("heartbeat")
    assert loops.not_ready() == []  # the market loop may just be waiting for a tick
    assert loops.dead() == []

    loops.failed("market", ConnectionError("redis is down"))
    clock.now += 20
    loops.failed("market", ConnectionError("redis is down"))
    assert loops.not_ready() == ["loop market failing: ConnectionError: redis is down"]
    assert loops.dead() == []  # failing, but not for long enough
    clock.now += 11
    (reason,) = loops.dead()
    assert reason == "loop market failing for 31s (2 attempts): ConnectionError: redis is down"

    loops.progress("market")  # it came back: the streak is over
    assert loops.dead() == []
    assert loops.not_ready() == []


def test_an_agent_whose_loops_keep_failing_says_why_and_exits(tmp_path: Path) -> None:
    port = processes.free_port()
    api_port = processes.free_port()
    termination = tmp_path / "termination-log"
    env = {
        **os.environ,
        "SAPPHIRE_METRICS_PORT": str(port),
        "SAPPHIRE_ROLE": "momentum",
        "SAPPHIRE_SYMBOLS": '["BTC-USD"]',
        "SAPPHIRE_AGENT_TOKEN": "agent-token-for-health",
        "SAPPHIRE_BACKOFF_MAX_SECONDS": "0.5",
        "SAPPHIRE_HEALTH_FAILING_SECONDS": "3",
        "SAPPHIRE_TERMINATION_LOG": str(termination),
        # Nothing listens on either: every loop fails.
        "SAPPHIRE_TRADER_API_URL": f"http://127.0.0.1:{api_port}",
        "SAPPHIRE_REDIS_URL": f"redis://127.0.0.1:{processes.free_port()}/0",
    }
    command = [str(Path(sys.executable).parent / "sapphire"), "agent", "run"]
    agent = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        processes.wait_until(lambda: processes.port_open(port), timeout=30, what="the agent's health port")
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 503
        reasons = ready.json()["reasons"]
        assert any(r.startswith("loop heartbeat failing: ApiUnavailableError") for r in reasons), reasons
        code = agent.wait(timeout=60)
    finally:
        processes.stop_process(agent)
    assert code == 1
    words = termination.read_text()
    assert words.startswith("agent unhealthy: ")
    assert re.search(r"loop (heartbeat|universe) failing for \d+s \(\d+ attempts\)", words), words
    assert f"Cannot connect to host 127.0.0.1:{api_port}" in words
    assert "agent-token-for-health" not in words


async def test_the_health_port_answers_probes_and_metrics() -> None:
    loops = health.LoopHealth(failing_seconds=1)
    loops.register("assess")
    server = await health.serve(loops, 0, host="127.0.0.1")
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/readyz")).status_code == 503
            loops.progress("assess")
            answer = await client.get("/readyz")
            assert answer.status_code == 200
            assert json.loads(answer.text)["loops"]["assess"]["progressed"] is True
            assert (await client.get("/healthz")).status_code == 200
            assert "# TYPE python_gc_objects_collected_total counter" in (await client.get("/metrics")).text
            assert (await client.get("/nothing")).status_code == 404
    finally:
        server.close()
        await server.wait_closed()
