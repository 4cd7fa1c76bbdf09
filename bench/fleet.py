"""The agents and the market feed as the real processes they are in a cluster.

``sapphire agent run`` once per role (the six analysts and the executor) and ``sapphire
feed --source simulated`` as background load, each its own process on the benchmark's
Redis and trader API, so that their CPU is theirs (read from ``/proc``) and the two cores
are shared the way a node would share them.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from bench import environment, procstat
from tests.support import processes, pubsub

ANALYSTS = ("momentum", "mean-reversion", "volatility", "microstructure", "sentiment", "strategist")
EXECUTOR_RISK = {
    "risk_max_order_notional": "2000",
    "risk_max_position_notional": "1000000000",
    "risk_max_gross_exposure": "1000000000",
    "risk_max_daily_loss": "1000000000",
}


@dataclass
class Fleet:
    processes: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of every process of the fleet, by name."""
        return {name: procstat.own_seconds(process.pid) for name, process in self.processes.items()}

    def output(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")


def _environment(api_url: str, redis_url: str, prefix: str, settings: Mapping[str, str]) -> dict[str, str]:
    return {
        **os.environ,
        "SAPPHIRE_TRADER_API_URL": api_url,
        "SAPPHIRE_REDIS_URL": redis_url,
        "SAPPHIRE_REDIS_KEY_PREFIX": prefix,
        "SAPPHIRE_AGENT_TOKEN": environment.AGENT_TOKEN,
        "SAPPHIRE_LOG_FORMAT": "json",
        "SAPPHIRE_LOG_LEVEL": "WARNING",
        **{f"SAPPHIRE_{key.upper()}": value for key, value in settings.items()},
    }


def agent_settings(role: str, symbols: Sequence[str], *, interval_seconds: float) -> dict[str, str]:
    settings = {
        "agent_name": f"bench-{role}",
        "role": role,
        "symbols": json.dumps(list(symbols)),
        "interval_seconds": str(interval_seconds),
        "heartbeat_seconds": "3600",
        "instruments_refresh_seconds": "3600",
    }
    return settings | EXECUTOR_RISK if role == "executor" else settings


@contextlib.contextmanager
def running(
    api_url: str, redis_url: str, prefix: str, members: Mapping[str, tuple[Sequence[str], Mapping[str, str]]]
) -> Iterator[Fleet]:
    """``members``: name -> (the ``sapphire`` arguments, its ``SAPPHIRE_*`` settings)."""
    fleet = Fleet(processes={}, logs={})
    try:
        for name, (args, settings) in members.items():
            log = Path(tempfile.mkstemp(prefix=f"sapphire-bench-{name}-", suffix=".log")[1])
            fleet.logs[name] = log
            with log.open("ab") as output:
                fleet.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "sapphire", *args],
                    env=_environment(api_url, redis_url, prefix, settings),
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=Path(__file__).resolve().parents[1],
                )
        yield fleet
    finally:
        for process in fleet.processes.values():
            process.terminate()
        for name, process in fleet.processes.items():
            processes.stop_process(process, grace=20)
            fleet.logs[name].unlink(missing_ok=True)


def analysts_and_executor(
    symbols: Sequence[str], *, interval_seconds: float, executor: bool = True, skip: Sequence[str] = ()
) -> dict[str, tuple[Sequence[str], Mapping[str, str]]]:
    roles = [role for role in ANALYSTS if role not in skip] + (["executor"] if executor else [])
    return {
        role: (["agent", "run"], agent_settings(role, symbols, interval_seconds=interval_seconds))
        for role in roles
    }


def background_feed(symbols: Sequence[str], ticks_per_s: float) -> tuple[Sequence[str], Mapping[str, str]]:
    """``sapphire feed --source simulated`` at ``ticks_per_s`` over ``symbols``."""
    return (
        ["feed", "--source", "simulated"],
        {
            "feed_symbols": json.dumps(list(symbols)),
            "feed_interval_seconds": str(len(symbols) / ticks_per_s),
            "feed_max_batch": "1000",
        },
    )


def wait_subscribed(redis_url: str, channels: Mapping[str, int], fleet: Fleet, timeout: float = 120) -> None:
    """Until every channel has its subscribers (the agents are up and listening)."""
    client = redis.Redis.from_url(redis_url)
    count = pubsub.redis_count(client)

    def ready() -> bool:
        for name, process in fleet.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}: {fleet.output(name)[-2000:]}")
        return all(count(channel) >= n for channel, n in channels.items())

    try:
        processes.wait_until(ready, timeout=timeout, what="the agents' subscriptions")
    finally:
        client.close()
