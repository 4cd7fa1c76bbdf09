"""The Redis bus. Every Redis error becomes :class:`BusUnavailableError`, which the API
answers with 503; the client reconnects by itself once Redis is back, so recovery needs
no restart of the API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence

import redis.asyncio
import redis.asyncio.client
import redis.asyncio.retry
import redis.backoff
import redis.exceptions

from sapphire.bus import base

_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


WRITE_SCRIPT = """
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i]) end
for i = #KEYS + 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
return #KEYS
"""
"""One write of the bus: the values set (``KEYS`` and the first ``ARGV``), then the
messages published in order (channel and data pairs), as one command. A pipeline of one
``PUBLISH`` per message cost the writer more than its batch's SQL statement (redis-py
packs and parses each command in Python); one script call packs and parses once. The
script runs atomically, so subscribers see the messages in the order given, as before."""


class _RedisSubscription(base.Subscription):
    def __init__(self, pubsub: redis.asyncio.client.PubSub) -> None:
        self.pubsub = pubsub

    async def get(self, wait_seconds: float) -> base.Message | None:
        try:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=wait_seconds)
        except _ERRORS as error:
            raise base.BusUnavailableError(f"redis: {error}") from error
        if message is None or message.get("type") != "message":
            return None
        return base.Message(channel=_text(message["channel"]), data=_text(message["data"]))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBus(base.Bus):
    def __init__(self, url: str, *, timeout: float) -> None:
        # One quick retry only: during an outage a request should fail fast with 503
        # rather than hold a worker for seconds.
        self.client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=redis.asyncio.retry.Retry(redis.backoff.ExponentialBackoff(cap=0.2, base=0.05), retries=1),
            health_check_interval=10,
        )
        self._write = self.client.register_script(WRITE_SCRIPT)

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except _ERRORS as error:
            raise base.BusUnavailableError(f"redis: {error}") from error

    async def get_many(self, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        try:
            values = await self.client.mget(list(keys))
        except _ERRORS as error:
            raise base.BusUnavailableError(f"redis: {error}") from error
        return [None if value is None else _text(value) for value in values]

    async def write(
        self, *, values: Mapping[str, str] | None = None, messages: Sequence[tuple[str, str]] = ()
    ) -> None:
        if not values and not messages:
            return
        keys = list(values or ())
        args = [values[key] for key in keys] if values else []
        for channel, data in messages:
            args += (channel, data)
        try:
            await self._write(keys=keys, args=args)
        except _ERRORS as error:
            raise base.BusUnavailableError(f"redis: {error}") from error

    @contextlib.asynccontextmanager
    async def _subscribe(self, channels: Sequence[str]) -> AsyncIterator[base.Subscription]:
        pubsub = self.client.pubsub()
        try:
            try:
                await pubsub.subscribe(*channels)
            except _ERRORS as error:
                raise base.BusUnavailableError(f"redis: {error}") from error
            yield _RedisSubscription(pubsub)
        finally:
            with contextlib.suppress(*_ERRORS):
                await pubsub.unsubscribe()
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    def subscribe(self, channels: Sequence[str]) -> contextlib.AbstractAsyncContextManager[base.Subscription]:
        return self._subscribe(channels)

    async def close(self) -> None:
        await self.client.aclose()
