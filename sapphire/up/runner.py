"""``sapphire up``: the trader API (uvicorn), the simulated market feed and the agents, in one process.

Order of events, and why:

1. read the plan (:mod:`sapphire.up.plan`) and bind the port *before* anything starts, so a
   bad file or a busy port is one line on stderr and nothing is left to clean up;
2. migrate the database with the same alembic revisions a cluster's MigrationRun applies;
3. serve the API on the bound socket, wait until ``/readyz`` answers, then start the market
   feed (what ``sapphire feed --source simulated`` runs) and the agents. They call the API on
   that socket, as they would in a cluster (one code path for the clients), and share its
   in-process bus (or, with ``REDIS_URL`` set, Redis);
4. draw the summary until Ctrl-C, SIGTERM or ``--duration``; then stop the feed and the agents
   first (they still need the API to finish their step), then the server.

Every agent gets the one stop event, so Ctrl-C reaches all of them whichever signal handler
asyncio holds at the time (``run_agent`` installs its own in the main thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from rich.console import Console
from rich.live import Live

from sapphire import bus as api_bus
from sapphire.agents import client, runtime
from sapphire.bus.memory import MemoryBus
from sapphire.feed import runner as feed_runner
from sapphire.trader_api.app import create_app
from sapphire.trader_api.settings import TraderApiSettings
from sapphire.up import plan as plan_module
from sapphire.up import setup, summary

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 30.0
AGENT_STOP_TIMEOUT_SECONDS = 15.0
PLAIN_STATUS_SECONDS = 10.0
"""How often a terminal without live display (or a log file) gets a status line."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ``sapphire up`` owns Ctrl-C and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.contextmanager
def _signals(handler: Callable[[], None]) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handler)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _snapshot(api: httpx.AsyncClient, plan: plan_module.Plan) -> summary.Snapshot:
    async def get(path: str) -> Any:
        response = await api.get(path)
        response.raise_for_status()
        return response.json()

    agents, signals, orders, fills, portfolio, risk = await asyncio.gather(
        get("/v1/agents"),
        get("/v1/signals?limit=1000"),
        get("/v1/orders?limit=1000"),
        get("/v1/fills?limit=1000"),
        get("/v1/portfolio"),
        get("/v1/risk"),
    )
    return summary.build_snapshot(
        now=datetime.now(UTC),
        agents=agents,
        signals=signals,
        orders=orders,
        fills=fills,
        portfolio=portfolio,
        risk=risk,
        expected_agents=[(agent.name, agent.role) for agent in plan.agents],
    )


async def _wait_ready(api: httpx.AsyncClient, serving: asyncio.Task[None], server: _Server) -> None:
    last = "the server did not start"
    async with asyncio.timeout(READY_TIMEOUT_SECONDS):
        while True:
            if serving.done():
                raise setup.UpError(f"the trader API stopped while starting: {last}")
            if server.started:
                response = await api.get("/readyz")
                if response.status_code == 200:
                    return
                last = response.text[:300]
            await asyncio.sleep(0.1)


class Session:
    """One run: the server, the agents and the summary, until stopped."""

    def __init__(
        self,
        plan: plan_module.Plan,
        options: setup.Options,
        stores: setup.Stores,
        tokens: setup.Tokens,
        settings: TraderApiSettings,
        console: Console,
        api_url: str,
    ) -> None:
        """``api_url`` is where the served socket answers this process's own clients."""
        self.plan, self.options, self.stores, self.tokens = plan, options, stores, tokens
        self.settings = settings
        self.console = console
        self.api_url = api_url
        self.stop = asyncio.Event()
        self.bus: api_bus.Bus | None = MemoryBus() if stores.in_process_bus else None
        self.app = create_app(settings, message_bus=self.bus)
        self.admin = httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {tokens.admin}"})
        self.last: summary.Snapshot | None = None

    def _start_feed(self) -> asyncio.Task[feed_runner.FeedTotals]:
        settings = setup.feed_settings(self.plan, self.options, self.tokens, self.api_url)
        return asyncio.create_task(
            feed_runner.run_market_feed(settings, "simulated", stop=self.stop, handle_signals=False),
            name="market-feed",
        )

    def _start_agents(self) -> list[tuple[asyncio.Task[list[str]], client.TraderApiClient]]:
        started = []
        for agent in self.plan.agents:
            settings = setup.agent_settings(
                agent, self.options, self.stores, self.tokens, self.settings.redis_key_prefix
            )
            api = client.TraderApiClient(self.api_url, token=self.tokens.agent)
            task = asyncio.create_task(
                runtime.run_agent(settings, bus=self.bus, api=api, stop=self.stop), name=f"agent-{agent.name}"
            )
            started.append((task, api))
        return started

    async def _stop_agents(
        self, agents: list[tuple[asyncio.Task[list[str]], client.TraderApiClient]]
    ) -> None:
        self.stop.set()
        tasks = [task for task, _ in agents]
        _, late = await asyncio.wait(tasks, timeout=AGENT_STOP_TIMEOUT_SECONDS)
        for task in late:
            log.warning("agent %s did not stop in time; cancelled", task.get_name())
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, api in agents:
            await api.aclose()

    async def _draw(self, show: Callable[[summary.Snapshot], None]) -> None:
        """Redraw until stopped; the API may be briefly busy (SQLite), so a failed read waits."""
        loop = asyncio.get_running_loop()
        deadline = None if self.options.duration is None else loop.time() + self.options.duration
        while not self.stop.is_set():
            try:
                self.last = await _snapshot(self.admin, self.plan)
                show(self.last)
            except httpx.HTTPError as error:
                log.warning("summary not refreshed: %s", error)
            wait = self.options.refresh_seconds
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), wait)

    async def run(self, sock: socket.socket, header: str) -> summary.Snapshot | None:
        server = _Server(
            uvicorn.Config(
                self.app,
                log_config=None,
                lifespan="on",
                access_log=False,
                timeout_graceful_shutdown=3,
                proxy_headers=False,
            )
        )
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
        agents: list[tuple[asyncio.Task[list[str]], client.TraderApiClient]] = []
        feed: asyncio.Task[feed_runner.FeedTotals] | None = None
        try:
            with _signals(self.stop.set):
                await _wait_ready(self.admin, serving, server)
                await self._warn_if_halted()
                feed = self._start_feed()
                agents = self._start_agents()
                await self._show_until_stopped(header)
            # A second Ctrl-C while stopping skips the graceful part.
            with _signals(lambda: setattr(server, "force_exit", True)):
                await self._stop_agents(agents)
                with contextlib.suppress(httpx.HTTPError):
                    self.last = await _snapshot(self.admin, self.plan)
        finally:
            self.stop.set()
            if agents and not all(task.done() for task, _ in agents):
                await self._stop_agents(agents)
            if feed is not None:
                await asyncio.gather(feed, return_exceptions=True)
            server.should_exit = True
            await asyncio.gather(serving, return_exceptions=True)
            await self.admin.aclose()
        return self.last

    async def _warn_if_halted(self) -> None:
        risk = (await self.admin.get("/v1/risk")).json()
        if risk.get("state") == "HALTED":
            self.console.print(
                f"[yellow]notice:[/] trading is HALTED ({risk.get('reason')}), kept from an earlier run: "
                "press RESUME on the dashboard, or start over with --reset"
            )

    async def _show_until_stopped(self, header: str) -> None:
        if self.options.live and self.console.is_terminal:
            with Live(console=self.console, refresh_per_second=4, transient=False) as live:
                await self._draw(lambda snap: live.update(summary.render(snap, header=header)))
            return
        loop = asyncio.get_running_loop()
        printed = [0.0]

        def show(snap: summary.Snapshot) -> None:
            if loop.time() - printed[0] >= PLAIN_STATUS_SECONDS:
                printed[0] = loop.time()
                self.console.print(summary.one_line(snap), highlight=False, soft_wrap=True)

        await self._draw(show)


def _links(options: setup.Options, port: int, tokens: setup.Tokens) -> dict[str, str]:
    """The URLs printed for the user; ``api`` is also what this process's agents, feed and
    summary call (a wildcard host is reached on loopback, an IPv6 literal in brackets)."""
    host = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host
    base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    dashboard = f"{base}/dashboard#token={tokens.read}" if tokens.generated else f"{base}/dashboard"
    return {"api": base, "dashboard": dashboard, "mcp": f"{base}/mcp", "docs": f"{base}/docs"}


def _print_start(
    console: Console,
    plan: plan_module.Plan,
    stores: setup.Stores,
    links: dict[str, str],
    tokens: setup.Tokens,
) -> None:
    lines = [f"[yellow]notice:[/] {notice}" for notice in plan.notices]
    lines += [
        f"[bold]Sapphire is up[/] with {len(plan.agents)} agents; {stores.description}",
        f"  dashboard  {links['dashboard']}",
        f"  API        {links['api']}   (OpenAPI: {links['docs']})",
        f"  MCP        {links['mcp']}   (streamable HTTP, bearer token)",
    ]
    if tokens.generated:
        lines += [
            "  tokens     fresh for this run (set SAPPHIRE_READ_TOKEN, _AGENT_TOKEN, _ADMIN_TOKEN to choose)",
            f"             read  {tokens.read}   (in the dashboard link)",
            f"             agent {tokens.agent}   (signals, orders, MCP submit_signal)",
            f"             admin {tokens.admin}   (HALT / RESUME on the dashboard)",
        ]
    else:
        lines.append("  tokens     from SAPPHIRE_READ_TOKEN, _AGENT_TOKEN and _ADMIN_TOKEN")
    lines.append("  Ctrl-C stops everything.")
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True)


def run(options: setup.Options, *, environ: dict[str, str] | None = None) -> summary.Snapshot | None:
    """Run until stopped; :class:`setup.UpError` and :class:`plan_module.PlanError` say why not."""
    environ = dict(os.environ) if environ is None else environ
    plan = plan_module.load_plan(options.path)
    stores = setup.choose_stores(options, environ)
    tokens = setup.choose_tokens(environ)
    sock = setup.bind(options.host, options.port)
    port = int(sock.getsockname()[1])
    console = Console()
    links = _links(options, port, tokens)
    try:
        if options.reset and stores.database_url.startswith("sqlite"):
            setup.reset_database_file(options.database_file)
        setup.migrate(stores)
        settings = setup.api_settings(plan, options, stores, tokens, port=port)
        _print_start(console, plan, stores, links, tokens)
        header = f"dashboard {links['dashboard'].split('#')[0]}   speed x{options.speed:g}   Ctrl-C stops"
        main = _main(plan, options, stores, tokens, settings, console, sock, header, links["api"])
        last = asyncio.run(main)
    finally:
        sock.close()
    if last is not None:
        console.print(summary.render(last, header="final state"))
        if options.json_summary:
            print(json.dumps({"links": {k: v.split("#")[0] for k, v in links.items()}, **last.to_json()}))
    return last


async def _main(
    plan: plan_module.Plan,
    options: setup.Options,
    stores: setup.Stores,
    tokens: setup.Tokens,
    settings: TraderApiSettings,
    console: Console,
    sock: socket.socket,
    header: str,
    api_url: str,
) -> summary.Snapshot | None:
    session = Session(plan, options, stores, tokens, settings, console, api_url)
    return await session.run(sock, header)
