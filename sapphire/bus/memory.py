"""The in-process bus of ``sapphire up``: a dict and asyncio queues, no server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence

from sapphire.bus import base

QUEUE_SIZE = 10_000
"""A subscriber that falls this far behind loses its oldest messages, as a slow Redis
pub/sub client would be disconnected: ticks and events are only worth something fresh."""


class _MemorySubscription(base.Subscription):
    def __init__(self, channels: Sequence[str]) -> None:
        self.channels = frozenset(channels)
        self.queue: asyncio.Queue[base.Message] = asyncio.Queue(QUEUE_SIZE)

    def offer(self, message: base.Message) -> None:
        if message.channel not in self.channels:
            return
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(message)

    async def get(self, wait_seconds: float) -> base.Message | None:
        try:
            return await asyncio.wait_for(self.queue.get(), wait_seconds)
        except TimeoutError:
            return None


class MemoryBus(base.Bus):
    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._subscriptions: set[_MemorySubscription] = set()

    async def ping(self) -> None:
        return None

    async def get_many(self, keys: Sequence[str]) -> list[str | None]:
        return [self._values.get(key) for key in keys]

    async def write(
        self, *, values: Mapping[str, str] | None = None, messages: Sequence[tuple[str, str]] = ()
    ) -> None:
        self._values.update(values or {})
        for channel, data in messages:
            message = base.Message(channel=channel, data=data)
            for subscription in list(self._subscriptions):
                subscription.offer(message)

    @contextlib.asynccontextmanager
    async def _subscribe(self, channels: Sequence[str]) -> AsyncIterator[base.Subscription]:
        subscription = _MemorySubscription(channels)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    def subscribe(self, channels: Sequence[str]) -> contextlib.AbstractAsyncContextManager[base.Subscription]:
        return self._subscribe(channels)

    def subscribers(self, channel: str) -> int:
        """How many subscriptions listen to ``channel`` now (Redis's ``PUBSUB NUMSUB``)."""
        return sum(channel in subscription.channels for subscription in self._subscriptions)

    async def close(self) -> None:
        self._subscriptions.clear()
