"""``sapphire agent run``: one agent process, wired to the trader API and the bus.

The process runs a handful of supervised loops (:mod:`sapphire.agents.supervision`), each
restarted with backoff when Redis or the API is down, none able to crash the process:

* ``universe``   the symbols to follow: fixed ones, or (all-market mode) every instrument
  ``/v1/instruments`` lists, re-read periodically so listings and delistings are followed;
* ``market``     ticks from ``{prefix}ticks:{SYMBOL}`` into the analyst's O(1) indicators,
  resubscribing whenever the universe changes;
* ``assess``     every ``interval_seconds``, each symbol's opinion, POSTed to ``/v1/signals``;
* ``heartbeat``  ``POST /v1/agents/{name}/heartbeat``;
* ``headlines``  (sentiment) polls ``/v1/headlines``; ``signals`` (strategist) listens to
  ``{prefix}signals``.

The executor role runs :class:`sapphire.agents.trading.ExecutorAgent` instead. SIGTERM and
SIGINT set the stop event; every loop finishes its current step and the process exits 0.

For ``sapphire up`` (one process), pass ``bus`` (the trader API's in-process bus, or any
object with ``subscribe(channels)``/``publish``), an ``api`` client (to the API's own socket,
as everywhere: there is no in-process transport), and a ``stop`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from datetime import timedelta

from sapphire import bus as message_bus
from sapphire.agents import analysts, client, market, supervision, trading
from sapphire.agents import health as agent_health
from sapphire.agents.context import AgentContext, Clock, utcnow
from sapphire.agents.llm import base as llm
from sapphire.agents.llm import factory
from sapphire.agents.settings import AgentSettings

logger = logging.getLogger(__name__)

AGENT_BUS_TIMEOUT = 2.0
"""Seconds to connect to Redis, or to hear back from it, before the bus is taken as down and the
loop backs off (a subscription's own wait for messages is not bounded by this)."""
WATCHDOG_SECONDS = 1.0
"""How often the agent checks that none of its loops has been failing for too long."""


class AnalystAgent:
    """An analyst role: ticks in, signals out."""

    def __init__(self, context: AgentContext, analyst: analysts.Analyst) -> None:
        self.context = context
        self.analyst = analyst

    def _tick_channels(self) -> list[str]:
        return [self.context.names.ticks(s) for s in self.context.universe.symbols]

    def _on_tick(self, message: message_bus.Message) -> None:
        tick = market.decode_tick(message.data)
        if tick.symbol in self.context.universe.symbols:
            self.analyst.observe(tick)

    def _on_signal(self, message: message_bus.Message) -> None:
        self.analyst.observe_signal(market.Signal.model_validate_json(message.data))

    async def assess_loop(self, backoff: supervision.Backoff) -> None:
        ctx = self.context
        while not ctx.stop.is_set():
            for symbol in ctx.universe.removed:
                self.analyst.forget(symbol)
            ctx.universe.removed = []
            for symbol in list(ctx.universe.symbols):
                opinion = await self.analyst.assess(symbol, ctx.clock())
                if opinion is None:
                    continue
                try:
                    await ctx.api.post_signal(opinion)
                except client.ApiRejectedError as error:
                    logger.warning("signal rejected", extra={"symbol": symbol, "error": str(error)})
                    continue
                backoff.reset()
                logger.info(
                    "signal",
                    extra={
                        "symbol": symbol,
                        "direction": opinion.direction.value,
                        "strength": str(opinion.strength),
                        "confidence": str(opinion.confidence),
                        "rationale": opinion.rationale,
                    },
                )
            if await supervision.sleep_or_stop(ctx.stop, ctx.settings.interval_seconds):
                return

    async def headlines_loop(self, backoff: supervision.Backoff) -> None:
        ctx = self.context
        since = ctx.clock() - timedelta(hours=6)
        while not ctx.stop.is_set():
            for headline in await ctx.api.headlines(since=since):
                self.analyst.observe_headline(headline)
                since = max(since, headline.ts)
            backoff.reset()
            if await supervision.sleep_or_stop(ctx.stop, ctx.settings.interval_seconds):
                return

    async def run(self) -> None:
        ctx = self.context
        loops = [
            ctx.supervised("universe", ctx.universe_loop),
            ctx.supervised("heartbeat", ctx.heartbeat_loop),
            ctx.supervised(
                "market",
                lambda b: ctx.listen(
                    b, self._tick_channels, self._on_tick, resubscribe_on_universe_change=True
                ),
            ),
            ctx.supervised("assess", self.assess_loop),
        ]
        if self.analyst.role == "sentiment":
            loops.append(ctx.supervised("headlines", self.headlines_loop))
        if self.analyst.role == "strategist":
            loops.append(
                ctx.supervised(
                    "signals", lambda b: ctx.listen(b, lambda: [ctx.names.signals], self._on_signal)
                )
            )
        await asyncio.gather(*loops)


def build_model(settings: AgentSettings, *, wait_for_slot: bool = False) -> llm.GuardedModel | None:
    return factory.build_model(
        wait_for_slot=wait_for_slot,
        provider=settings.model_provider,
        name=settings.model_name,
        endpoint=settings.model_endpoint,
        api_key=settings.model_api_key_value,
        project=settings.model_project,
        location=settings.model_location,
        timeout_seconds=settings.model_timeout_seconds,
        max_calls_per_minute=settings.model_max_calls_per_minute,
    )


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (tests, sapphire up): the caller owns ``stop``
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def run_agent(
    settings: AgentSettings,
    *,
    bus: message_bus.Bus | None = None,
    api: client.TraderApiClient | None = None,
    model: llm.StructuredModel | None = None,
    stop: asyncio.Event | None = None,
    clock: Clock = utcnow,
) -> list[str]:
    """Run one agent until ``stop`` is set or SIGTERM arrives. Never raises on outages.

    Returns why the agent stopped itself (its loops kept failing, :mod:`health`), or an empty
    list after a requested stop."""
    stop = stop or asyncio.Event()
    own_api = api is None
    api = api or client.TraderApiClient(
        str(settings.trader_api_url), token=settings.agent_token.get_secret_value()
    )
    own_bus: message_bus.Bus | None = None
    if bus is None:
        if str(settings.redis_url).startswith("memory:"):
            raise ValueError(
                "redis_url: memory:// needs the in-process bus passed to run_agent (sapphire up)"
            )
        bus = own_bus = message_bus.open_bus(str(settings.redis_url), timeout=AGENT_BUS_TIMEOUT)
    own_model = build_model(settings) if model is None else None
    model = model or own_model
    context = AgentContext(settings, api=api, bus=bus, stop=stop, clock=clock)
    logger.info(
        "agent starting",
        extra={
            "agent": settings.agent_name,
            "role": settings.role,
            "symbols": settings.symbols or "ALL",
            "model": model.label if model else None,
        },
    )
    server = (
        await agent_health.serve(context.health, settings.metrics_port) if settings.metrics_port else None
    )
    watchdog = asyncio.create_task(
        agent_health.watch(
            context.health,
            stop=stop,
            every_seconds=WATCHDOG_SECONDS,
            termination_log=settings.termination_log,
        )
    )
    try:
        with _stop_on_signals(stop):
            if settings.role == "executor":
                await trading.ExecutorAgent.from_settings(context, arbiter=model).run()
            else:
                await AnalystAgent(
                    context, analysts.build_analyst(settings.role, agent=settings.agent_name, model=model)
                ).run()
    finally:
        if not watchdog.done():
            watchdog.cancel()
        if server is not None:
            server.close()
        if own_model is not None:
            await own_model.aclose()
        if own_bus is not None:
            await own_bus.close()
        if own_api:
            await api.aclose()
        logger.info("agent stopped", extra={"agent": settings.agent_name})
    # Past the finally: reached only when the run ended without an exception.
    return watchdog.result() if watchdog.done() and not watchdog.cancelled() else []
