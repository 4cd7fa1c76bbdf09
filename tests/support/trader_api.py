"""Runs the real trader API (``sapphire api``, uvicorn) as a subprocess for end-to-end tests.

:func:`running_trader_api` is the common case (start, serve, shut down cleanly);
:class:`TraderApiProcess` is for crash and failover tests, which SIGKILL the process and
start it again on the same port and the same database. :class:`ServedApp` is the same app on
uvicorn inside the test's own event loop, for outage tests that stop and start the server
often (no process to spawn); :func:`serving` serves any app so for one block (an app built on
the in-process bus its agents share, or a test's own small app).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from starlette.types import ASGIApp

from sapphire.trader_api.app import create_app
from sapphire.trader_api.settings import TraderApiSettings
from tests.support import processes

READ_TOKEN = "e2e-read-token"
AGENT_TOKEN = "e2e-agent-token"
ADMIN_TOKEN = "e2e-admin-token"

PYCACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sapphire" / "pycache"


@dataclass(frozen=True)
class TraderApi:
    url: str
    log: Path

    def client(self, token: str = ADMIN_TOKEN) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def subprocess_environment() -> dict[str, str]:
    """This process's environment, for a ``sapphire`` subprocess that shares a bytecode cache.

    The image sets ``PYTHONDONTWRITEBYTECODE`` (see the Dockerfile), so each start would
    compile every module it imports again, seconds on a busy machine (``sapphire up``: 15 s
    at a load of 5 on two cores); the tests' processes share a cache outside the repository
    instead."""
    inherited = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    inherited.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE))
    return inherited


def api_environment(
    *, database_url: str, redis_url: str, port: int, settings: Mapping[str, str]
) -> dict[str, str]:
    """The environment of ``sapphire api``: ``settings`` are ``SAPPHIRE_*`` variables without
    the prefix (``fee_bps="0"``); they may override the defaults here, tokens included."""
    return {
        **subprocess_environment(),
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


@dataclass
class TraderApiProcess:
    """One ``sapphire api`` process that a test may SIGKILL and start again: the port, the
    settings and the log file stay the same across restarts (the log is appended to)."""

    database_url: str
    redis_url: str
    settings: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=processes.free_port)
    log: Path = field(
        default_factory=lambda: Path(tempfile.mkstemp(prefix="sapphire-api-", suffix=".log")[1])
    )
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 60) -> TraderApiProcess:
        """Spawn the API and wait until ``/readyz`` answers 200 (database and bus up; the
        engine's role may be any)."""
        return self.spawn().wait_ready(timeout=timeout)

    def spawn(self) -> TraderApiProcess:
        """Start the process without waiting (several replicas can then start side by side)."""
        if self.process is not None:
            raise RuntimeError(f"sapphire api on port {self.port} is already running")
        env = api_environment(
            database_url=self.database_url, redis_url=self.redis_url, port=self.port, settings=self.settings
        )
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sapphire", "api"], env=env, stdout=output, stderr=subprocess.STDOUT
            )
        return self

    def wait_ready(self, *, timeout: float = 60) -> TraderApiProcess:
        """Wait until ``/readyz`` answers 200; on a timeout (or an exit) stop it and raise with its log."""
        process = self.process
        if process is None:
            raise RuntimeError(f"sapphire api on port {self.port} was not started")

        def ready_or_gone() -> bool:
            return process.poll() is not None or httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200

        try:
            processes.wait_until(ready_or_gone, timeout=timeout, what=f"sapphire api on port {self.port}")
        except TimeoutError as error:
            self.stop()
            raise TimeoutError(f"{error}; log {self.log}:\n{self.output()[-3000:]}") from None
        if process.poll() is not None:
            self.process = None
            raise RuntimeError(
                f"sapphire api on port {self.port} exited with {process.returncode}; "
                f"log {self.log}:\n{self.output()[-3000:]}"
            )
        return self

    def kill(self) -> None:
        """SIGKILL: the crash case, no shutdown code runs."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> int | None:
        """SIGTERM (then SIGKILL after a grace period); the exit status, None if not running."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        processes.stop_process(process)
        return process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class ServedApp:
    """The trader API on uvicorn, in this event loop, on a port of its own. :meth:`stop`
    closes the listening socket (connections are refused, as when the API's pod is gone);
    :meth:`start` serves a fresh app on the same port, with the same or other settings (an
    operator's new instrument list)."""

    port: int = field(default_factory=processes.free_port)
    _server: uvicorn.Server | None = None
    _serving: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, settings: TraderApiSettings) -> None:
        await self.serve(create_app(settings))

    async def serve(self, app: ASGIApp) -> None:
        """Serve ``app`` (its lifespan run by uvicorn) until :meth:`stop`."""
        if self._server is not None:
            raise RuntimeError(f"the trader API on port {self.port} is already served")
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, lifespan="on")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())

        def started() -> bool | None:
            if serving.done():
                raise RuntimeError(f"uvicorn on port {self.port} exited before serving")
            return True if server.started else None

        await processes.observe(started, within=30, what=f"uvicorn serving on port {self.port}")
        self._server, self._serving = server, serving

    async def stop(self) -> None:
        if self._server is None or self._serving is None:
            return
        self._server.should_exit = True
        await asyncio.wait_for(self._serving, timeout=15)
        self._server = self._serving = None


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[ServedApp]:
    """``app`` on uvicorn in this event loop, on a free port, for the block."""
    served = ServedApp()
    await served.serve(app)
    try:
        yield served
    finally:
        await served.stop()


@contextmanager
def running_trader_api(*, database_url: str, redis_url: str, **settings: str) -> Iterator[TraderApi]:
    """``sapphire api`` on a free port; ``settings`` are ``SAPPHIRE_*`` variables (they may
    override the defaults here, tokens included). Fails if the API does not shut down cleanly."""
    api = TraderApiProcess(database_url=database_url, redis_url=redis_url, settings=dict(settings))
    api.start()
    try:
        yield TraderApi(url=api.url, log=api.log)
    finally:
        returncode = api.stop()
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully.
    assert returncode in (0, -15), f"sapphire api exited with {returncode}; log: {api.log}"


@dataclass
class MarketFeedProcess:
    """One ``sapphire feed`` process; its stdout and stderr go to ``log``."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def feed_environment(api_url: str, settings: Mapping[str, str]) -> dict[str, str]:
    """The environment of ``sapphire feed`` posting to ``api_url`` with the agent token, on the
    shared bytecode cache (see :func:`subprocess_environment`: ccxt alone takes seconds to compile)."""
    return {
        **subprocess_environment(),
        "SAPPHIRE_TRADER_API_URL": api_url,
        "SAPPHIRE_AGENT_TOKEN": AGENT_TOKEN,
        "SAPPHIRE_LOG_FORMAT": "json",
        **{f"SAPPHIRE_{key.upper()}": value for key, value in settings.items()},
    }


def spawn_market_feed(api_url: str, *args: str, **settings: str) -> MarketFeedProcess:
    """``sapphire feed --source simulated`` (or ``args``) posting to ``api_url``, not waited
    for; ``settings`` are ``SAPPHIRE_*`` variables without the prefix."""
    env = feed_environment(api_url, settings)
    log = Path(tempfile.mkstemp(prefix="sapphire-feed-", suffix=".log")[1])
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "sapphire", "feed", *(args or ("--source", "simulated"))],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return MarketFeedProcess(process=process, log=log)


@contextmanager
def running_market_feed(api_url: str, *args: str, **settings: str) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`spawn_market_feed`, stopped with SIGTERM at the end, which it must exit 0 on."""
    feed = spawn_market_feed(api_url, *args, **settings)
    try:
        yield feed.process
    finally:
        processes.stop_process(feed.process, grace=15)
        output_text = feed.output()[-2000:]
        assert feed.process.returncode == 0, (
            f"sapphire feed exited with {feed.process.returncode}: {output_text}"
        )
        feed.log.unlink(missing_ok=True)
