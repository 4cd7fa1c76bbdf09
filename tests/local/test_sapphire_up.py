"""``sapphire up -f manifests/examples/`` as a new user runs it: a real process that serves the
API and the dashboard, trades on its own for a while, stops by itself and says what it did;
and, when it cannot start, one clear line instead of a traceback."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from tests.support import processes, pubsub, trader_api

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLES = REPOSITORY / "manifests" / "examples"
TOKENS = {
    "SAPPHIRE_READ_TOKEN": "up-read-token-0123",
    "SAPPHIRE_AGENT_TOKEN": "up-agent-token-0123",
    "SAPPHIRE_ADMIN_TOKEN": "up-admin-token-0123",
}


def up_environment(**extra: str) -> dict[str, str]:
    """The user's environment, less anything that would point ``up`` at real servers (and
    with the tests' bytecode cache)."""
    environ = {
        key: value
        for key, value in trader_api.subprocess_environment().items()
        if key not in ("DATABASE_URL", "REDIS_URL", "SAPPHIRE_DATABASE_URL", "SAPPHIRE_REDIS_URL")
        and not key.endswith("_TOKEN")
    }
    return {**environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120", **extra}


def sapphire_up(
    *args: str, cwd: Path, output: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``sapphire up ARGS`` in ``cwd``; its output piped, or written to ``output`` (long runs)."""
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(output.open("w")) if output is not None else subprocess.PIPE
        return subprocess.Popen(
            [sys.executable, "-m", "sapphire", "up", *args],
            cwd=cwd,
            env=up_environment(**(env or {})),
            stdout=sink,
            stderr=subprocess.STDOUT if output is not None else subprocess.PIPE,
            text=True,
        )


def test_up_runs_the_examples_and_trades_until_its_duration_ends(tmp_path: Path) -> None:
    port = processes.free_port()
    process = sapphire_up(
        "-f",
        str(EXAMPLES),
        "--port",
        str(port),
        "--duration",
        "30",
        "--speed",
        "10",
        "--json",
        "--no-live",
        cwd=tmp_path,
        env=TOKENS,
    )
    url = f"http://127.0.0.1:{port}"
    read = {"Authorization": f"Bearer {TOKENS['SAPPHIRE_READ_TOKEN']}"}
    try:
        processes.wait_until(
            lambda: httpx.get(f"{url}/readyz", timeout=1).status_code == 200,
            timeout=30,
            what="sapphire up serving",
        )
        page = httpx.get(f"{url}/dashboard", timeout=5)
        assert page.status_code == 200
        assert "plotly.min.js" in page.text
        assert TOKENS["SAPPHIRE_READ_TOKEN"] not in page.text
        # The API, checked while the agents trade: fills arrive within the run.
        processes.wait_until(
            lambda: bool(httpx.get(f"{url}/v1/fills", headers=read, timeout=2).json()),
            timeout=40,
            interval=1,
            what="the first fill",
        )
        stdout, stderr = process.communicate(timeout=60)
    finally:
        processes.stop_process(process)  # type: ignore[arg-type]
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    lines = stdout.strip().splitlines()
    final = json.loads(lines[-1])
    assert final["signals"] > 0
    assert final["orders"] > 0
    assert final["fills"] > 0
    assert final["positions"], final
    assert Decimal(final["equity"]) > 0
    assert final["risk"]["state"] == "ACTIVE"
    assert {agent["name"] for agent in final["agents"]} >= {"executor", "momentum", "strategist-vertex"}
    assert all(agent["alive"] for agent in final["agents"])
    assert final["links"]["dashboard"] == f"{url}/dashboard"
    text = "\n".join(lines)
    assert "skipped" in text
    assert "MigrationRun 'trading-to-head'" in text
    assert "strategist-vertex: spec.model vertex/gemini-2.5-flash is not called locally" in text
    assert f"dashboard  {url}/dashboard" in text
    assert (tmp_path / "sapphire.db").exists()


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def failure(*args: str, cwd: Path) -> str:
    """stderr of a ``sapphire up`` that must refuse to start, after checking it did."""
    process = sapphire_up(*args, cwd=cwd)
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        processes.stop_process(process)  # type: ignore[arg-type]
    assert process.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    return stderr.strip()


def test_a_busy_port_is_one_line_naming_the_option(tmp_path: Path, busy_port: int) -> None:
    message = failure("-f", str(EXAMPLES), "--port", str(busy_port), "--duration", "5", cwd=tmp_path)
    assert message.startswith(f"error: --port {busy_port}: cannot listen on 127.0.0.1:{busy_port}")
    assert "pick another with --port" in message


def test_a_bad_field_is_one_line_naming_the_file_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "agents.yaml"
    bad.write_text(
        "apiVersion: trading.sapphire-ai.com/v1alpha1\nkind: TradingAgent\nmetadata: {name: fast}\n"
        "spec: {role: momentum, intervalSeconds: 1}\n",
        encoding="utf-8",
    )
    message = failure("-f", str(bad), "--duration", "5", "--port", "0", cwd=tmp_path)
    assert message.startswith(f"error: {bad}: TradingAgent 'fast': spec.intervalSeconds:")


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    message = failure("-f", "no-such-dir/", "--duration", "5", cwd=tmp_path)
    assert message == "error: no-such-dir: no such file or directory"


def test_ctrl_c_stops_everything_cleanly(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    """On the real Redis, so that the agent is seen running (subscribed to its ticks: PUBSUB
    NUMSUB) before Ctrl-C, and seen gone after it."""
    port = processes.free_port()
    env = {**TOKENS, "REDIS_URL": redis_url, "SAPPHIRE_REDIS_KEY_PREFIX": redis_prefix}
    process = sapphire_up(
        "-f", str(EXAMPLES / "momentum.yaml"), "--port", str(port), "--no-live", cwd=tmp_path, env=env
    )
    url = f"http://127.0.0.1:{port}"
    ticks = f"{redis_prefix}ticks:BTC-USD"
    with redis.Redis.from_url(redis_url) as client:
        subscribers = pubsub.redis_count(client)
        try:
            processes.wait_until(
                lambda: httpx.get(f"{url}/readyz", timeout=1).status_code == 200,
                timeout=30,
                what="sapphire up serving",
            )
            pubsub.wait_subscribed(subscribers, {ticks: 1}, within=30)  # the momentum agent
            process.send_signal(2)  # SIGINT, as Ctrl-C
            stdout, stderr = process.communicate(timeout=30)
        finally:
            processes.stop_process(process)  # type: ignore[arg-type]
        assert subscribers(ticks) == 0, "an agent's subscription outlived sapphire up"
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "final state" in stdout
    assert not processes.port_open(port)


def test_up_uses_real_postgres_and_redis_when_their_urls_are_set(
    tmp_path: Path, database_url: str, redis_url: str, redis_prefix: str
) -> None:
    port = processes.free_port()
    env = {
        **TOKENS,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SAPPHIRE_REDIS_KEY_PREFIX": redis_prefix,
    }
    process = sapphire_up(
        "-f",
        str(EXAMPLES),
        "--port",
        str(port),
        "--duration",
        "20",
        "--speed",
        "10",
        "--json",
        "--no-live",
        cwd=tmp_path,
        env=env,
    )
    try:
        stdout, stderr = process.communicate(timeout=90)
    finally:
        processes.stop_process(process)  # type: ignore[arg-type]
    assert process.returncode == 0, stderr
    final = json.loads(stdout.strip().splitlines()[-1])
    assert final["fills"] > 0
    assert "(DATABASE_URL)" in stdout
    assert "(REDIS_URL)" in stdout
    assert not (tmp_path / "sapphire.db").exists()
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*) FROM fills").fetchone()
    assert row is not None
    assert row[0] == final["fills"]
