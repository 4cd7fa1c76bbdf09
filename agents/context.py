"""What every loop of an agent shares: its settings, the trader API client, the bus, the
clock, the stop event, and the universe of symbols it follows.

Its own module so that both kinds of agent (the analysts in :mod:`sapphire.agents.runtime` and
the executor in :mod:`sapphire.agents.trading`) build on it without importing each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pydantic

from sapphire import bus as message_bus
from sapphire.agents import client, sizing, supervision
from sapphire.agents import health as agent_health
from sapphire.agents.settings import AgentSettings
from sapphire.bus import names as bus_names

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Universe:
    """The symbols an agent follows; ``version`` moves whenever the set changes."""

    def __init__(self, fixed: list[str]) -> None:
        self.fixed = list(dict.fromkeys(fixed))
        self.symbols: list[str] = list(self.fixed)
        self.version = 0
        self.changed = asyncio.Event()
        self.removed: list[str] = []

    @property
    def all_market(self) -> bool:
        return not self.fixed

    def update(self, symbols: list[str]) -> bool:
        fresh = sorted(set(symbols))
        if fresh == sorted(self.symbols):
            return False
        self.removed = sorted(set(self.symbols) - set(fresh))
        self.symbols = fresh
        self.version += 1
        self.changed.set()
        return True


class AgentContext:
    """What every loop shares: settings, the API, the bus, the clock and the stop event."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        api: client.TraderApiClient,
        bus: message_bus.Bus,
        stop: asyncio.Event,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.api = api
        self.bus = bus
        self.stop = stop
        self.clock = clock
        # The channel names are the trader API's wire contract: one definition for both sides.
        self.names = bus_names.Names(settings.redis_key_prefix)
        self.universe = Universe(settings.symbols)
        self.health = agent_health.LoopHealth(failing_seconds=settings.health_failing_seconds)

    def supervised(
        self, name: str, body: Callable[[supervision.Backoff], Awaitable[None]]
    ) -> Awaitable[None]:
        return supervision.supervise(
            name,
            body,
            stop=self.stop,
            backoff_max_seconds=self.settings.backoff_max_seconds,
            health=self.health,
        )

    async def universe_loop(
        self,
        backoff: supervision.Backoff,
        *,
        on_instruments: Callable[[list[sizing.Instrument]], None] | None = None,
    ) -> None:
        """Follow ``/v1/instruments``: the all-market universe, and lot/tick sizes for the executor."""
        while not self.stop.is_set():
            instruments = await self.api.instruments()
            backoff.reset()
            listed = [i.symbol for i in instruments]
            if on_instruments is not None:
                on_instruments(instruments)
            if self.universe.all_market and self.universe.update(listed):
                logger.info(
                    "universe changed",
                    extra={"symbols": self.universe.symbols, "removed": self.universe.removed},
                )
            if await supervision.sleep_or_stop(self.stop, self.settings.instruments_refresh_seconds):
                return

    async def heartbeat_loop(self, backoff: supervision.Backoff) -> None:
        while not self.stop.is_set():
            await self.api.heartbeat(
                self.settings.agent_name,
                role=self.settings.role,
                symbols=self.universe.symbols,
                model=self.settings.model_label,
            )
            backoff.reset()
            if await supervision.sleep_or_stop(self.stop, self.settings.heartbeat_seconds):
                return

    async def listen(
        self,
        backoff: supervision.Backoff,
        channels: Callable[[], list[str]],
        handle: Callable[[message_bus.Message], Awaitable[None] | None],
        *,
        resubscribe_on_universe_change: bool = False,
    ) -> None:
        """Subscribe to ``channels()`` and hand every message to ``handle`` until stop.

        With ``resubscribe_on_universe_change`` the subscription is renewed whenever the
        universe moves, so new symbols' ticks arrive and delisted ones stop.
        """
        while not self.stop.is_set():
            wanted = channels()
            if not wanted:
                self.universe.changed.clear()
                waiter = asyncio.ensure_future(self.universe.changed.wait())
                stopper = asyncio.ensure_future(self.stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            version = self.universe.version
            async with self.bus.subscribe(wanted) as subscription:
                backoff.reset()
                while not self.stop.is_set():
                    if resubscribe_on_universe_change and self.universe.version != version:
                        break
                    message = await subscription.get(0.25)
                    if message is None:
                        continue
                    try:
                        result = handle(message)
                        if result is not None:
                            await result
                    except (pydantic.ValidationError, ValueError) as error:
                        logger.warning(
                            "bad message ignored",
                            extra={"channel": message.channel, "error": str(error)[:300]},
                        )
