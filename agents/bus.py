"""The agent side of the message bus: subscribe to channels, publish to them.

The runtime depends only on the small :class:`Bus` protocol below, which the trader API's
buses (``sapphire.trader_api.bus``: Redis and the in-process ``MemoryBus`` of ``sapphire up``)
satisfy structurally, so ``sapphire up`` can hand the very same bus object to the API and to
every agent. :class:`RedisBus` is the agent pod's own implementation, so an agent image path
never imports the API.

Every Redis failure surfaces as :class:`BusUnavailableError`; the runtime answers it with
backoff and a fresh subscription, never with a crash.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio
import redis.exceptions

_REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class BusUnavailableError(RuntimeError):
    """The bus cannot be reached right now."""


class Message(Protocol):
    @property
    def channel(self) -> str: ...

    @property
    def data(self) -> str: ...


class Subscription(Protocol):
    async def get(self, wait_seconds: float, /) -> Message | None:
        """The next message, or None after ``wait_seconds`` without one (positional: any name fits)."""
        ...


class Bus(Protocol):
    def subscribe(self, channels: Sequence[str]) -> contextlib.AbstractAsyncContextManager[Subscription]: ...

    async def publish(self, channel: str, data: str) -> None: ...


@dataclass(frozen=True)
class _Message:
    channel: str
    data: str


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _RedisSubscription:
    def __init__(self, pubsub: redis.asyncio.client.PubSub) -> None:
        self.pubsub = pubsub

    async def get(self, wait_seconds: float, /) -> Message | None:
        try:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=wait_seconds)
        except _REDIS_ERRORS as error:
            raise BusUnavailableError(f"redis: {error}") from error
        if message is None or message.get("type") != "message":
            return None
        return _Message(channel=_text(message["channel"]), data=_text(message["data"]))


class RedisBus:
    """Redis pub/sub. Fails fast (no client-side retries): the runtime owns the backoff."""

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        self.client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url, socket_timeout=None, socket_connect_timeout=timeout, health_check_interval=15
        )

    @contextlib.asynccontextmanager
    async def _subscribe(self, channels: Sequence[str]) -> AsyncIterator[Subscription]:
        pubsub = self.client.pubsub()
        try:
            try:
                await pubsub.subscribe(*channels)
            except _REDIS_ERRORS as error:
                raise BusUnavailableError(f"redis: {error}") from error
            yield _RedisSubscription(pubsub)
        finally:
            with contextlib.suppress(*_REDIS_ERRORS):
                await pubsub.unsubscribe()
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    def subscribe(self, channels: Sequence[str]) -> contextlib.AbstractAsyncContextManager[Subscription]:
        return self._subscribe(channels)

    async def publish(self, channel: str, data: str) -> None:
        try:
            await self.client.publish(channel, data)
        except _REDIS_ERRORS as error:
            raise BusUnavailableError(f"redis: {error}") from error

    async def close(self) -> None:
        await self.client.aclose()
