"""Runs the real trader API (``sapphire api``, uvicorn) as a subprocess for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import processes

READ_TOKEN = "e2e-read-token"
AGENT_TOKEN = "e2e-agent-token"
ADMIN_TOKEN = "e2e-admin-token"


@dataclass(frozen=True)
class TraderApi:
    url: str
    log: Path

    def client(self, token: str = ADMIN_TOKEN) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


@contextmanager
def running_trader_api(*, database_url: str, redis_url: str, **settings: str) -> Iterator[TraderApi]:
    """``sapphire api`` on a free port; ``settings`` are ``SAPPHIRE_*`` variables (they may
    override the defaults here, tokens included). Fails if the API does not shut down cleanly."""
    port = processes.free_port()
    env = {
        **os.environ,
        "SAPPHIRE_DATABASE_URL": database_url.replace("postgresql://", "postgresql+psycopg://", 1),
        "SAPPHIRE_REDIS_URL": redis_url,
        "SAPPHIRE_READ_TOKEN": READ_TOKEN,
        "SAPPHIRE_AGENT_TOKEN": AGENT_TOKEN,
        "SAPPHIRE_ADMIN_TOKEN": ADMIN_TOKEN,
        "SAPPHIRE_PORT": str(port),
        "SAPPHIRE_LOG_FORMAT": "json",
        "SAPPHIRE_LOG_LEVEL": "WARNING",
        **{f"SAPPHIRE_{key.upper()}": value for key, value in settings.items()},
    }
    log = Path(tempfile.mkstemp(prefix="sapphire-api-", suffix=".log")[1])
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "sapphire", "api"], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        processes.wait_until(
            lambda: httpx.get(f"{url}/readyz", timeout=1).status_code == 200, timeout=30, what="sapphire api"
        )
        yield TraderApi(url=url, log=log)
    finally:
        processes.stop_process(process)
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully.
    assert process.returncode in (0, -15), f"sapphire api exited with {process.returncode}; log: {log}"
