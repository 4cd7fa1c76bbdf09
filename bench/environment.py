"""The real components the benchmarks run against: Postgres, Redis and the trader API.

* Postgres and Redis are the test suite's own throwaway servers
  (:mod:`tests.support.services`), except that ``make bench`` starts Postgres with its
  durability settings **on** (``fsync``, ``synchronous_commit``, ``full_page_writes``): the
  test servers turn them off for speed, and "durable orders/s" measured without fsync
  would measure nothing durable.
* The trader API runs as a real uvicorn process (``python -m bench.serve``, which is
  ``sapphire api`` plus an optional profiler): the HTTP parsing, the separate process and
  the loopback sockets are part of what production pays, and an in-process ASGI
  transport would bill the server's work to the benchmark's own event loop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from sapphire.migrations import config as migrations
from tests.support import processes, services

AGENT_TOKEN = "bench-agent-token-0123456789"
ADMIN_TOKEN = "bench-admin-token-0123456789"
READ_TOKEN = "bench-read-token-0123456789"


@dataclass
class Services:
    postgres: services.PostgresServer
    redis: services.RedisServer

    def versions(self) -> dict[str, str]:
        with psycopg.connect(self.postgres.admin_url) as connection:
            row = connection.execute("SHOW server_version").fetchone()
            durability = connection.execute("SHOW fsync").fetchone()
        info: Mapping[str, Any] = self.redis.client().info("server")
        return {
            "postgres": str(row[0] if row else "unknown"),
            "postgres_fsync": str(durability[0] if durability else "unknown"),
            "redis": str(info.get("redis_version", "unknown")),
        }

    def migrated_database(self) -> str:
        """A fresh database at alembic head (``postgresql://`` URL)."""
        url = self.postgres.create_database()
        migrations.upgrade(url)
        return url

    def fresh_redis(self) -> tuple[str, str]:
        """A flushed Redis database and a key prefix of its own."""
        return self.redis.fresh_database(), f"bench{uuid.uuid4().hex[:8]}:"


@contextlib.contextmanager
def started_services(*, durable: bool = True) -> Iterator[Services]:
    postgres = services.PostgresServer.start(durable=durable)
    try:
        server = services.RedisServer.start()
        try:
            yield Services(postgres=postgres, redis=server)
        finally:
            server.stop()
    finally:
        postgres.stop()


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


@dataclass(frozen=True)
class ApiProcess:
    url: str
    log: Path
    process: subprocess.Popen[bytes]
    profiling: bool = False

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def start_profile(self) -> None:
        """Start pyinstrument in the API process (started with ``profile=``); no-op otherwise."""
        if self.profiling:  # without the handler, SIGUSR1 would end the process
            self.process.send_signal(signal.SIGUSR1)


@contextlib.contextmanager
def running_api(
    *,
    database_url: str,
    redis_url: str,
    prefix: str,
    settings: Mapping[str, str] | None = None,
    profile: Path | None = None,
    module: str = "bench.serve",
) -> Iterator[ApiProcess]:
    """The trader API in its own uvicorn process; ``profile`` writes a pyinstrument text profile there.

    ``module`` is what ``python -m`` runs: ``bench.floor_app`` serves the bare HTTP floor with
    the same environment and uvicorn settings instead (it has no profiler)."""
    port = processes.free_port()
    env = {
        **os.environ,
        "SAPPHIRE_DATABASE_URL": database_url.replace("postgresql://", "postgresql+psycopg://", 1),
        "SAPPHIRE_REDIS_URL": redis_url,
        "SAPPHIRE_REDIS_KEY_PREFIX": prefix,
        "SAPPHIRE_READ_TOKEN": READ_TOKEN,
        "SAPPHIRE_AGENT_TOKEN": AGENT_TOKEN,
        "SAPPHIRE_ADMIN_TOKEN": ADMIN_TOKEN,
        "SAPPHIRE_PORT": str(port),
        "SAPPHIRE_LOG_FORMAT": "json",
        "SAPPHIRE_LOG_LEVEL": "WARNING",
        **{f"SAPPHIRE_{key.upper()}": value for key, value in (settings or {}).items()},
    }
    if profile is not None:
        env["BENCH_PROFILE"] = str(profile)
    log = Path(tempfile.mkstemp(prefix="sapphire-bench-api-", suffix=".log")[1])
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[1],
        )
    url = f"http://127.0.0.1:{port}"
    api = ApiProcess(url=url, log=log, process=process, profiling=profile is not None)
    try:
        try:
            processes.wait_until(
                lambda: httpx.get(f"{url}/readyz", timeout=1).status_code == 200, timeout=60, what="the API"
            )
        except TimeoutError as error:
            raise TimeoutError(f"{error}; output:\n{api.output()[-3000:]}") from None
        yield api
    finally:
        # SIGTERM: uvicorn shuts down gracefully, and bench.serve then writes the profile,
        # which takes a while on a busy machine when it holds minutes of samples.
        processes.stop_process(process, grace=30 if profile is None else 180)
        log.unlink(missing_ok=True)
