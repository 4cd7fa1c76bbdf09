"""Waiting until pub/sub subscribers are in place, as the bus itself counts them: Redis's
``PUBSUB NUMSUB``, or the in-process bus's own count. A message published before its
subscriber has subscribed is lost without a trace, so a test that publishes waits for this
fact first instead of sleeping and hoping."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import redis

from sapphire.bus.memory import MemoryBus
from tests.support import processes

Count = Callable[[str], int]
"""How many subscribers a channel has right now."""


def redis_count(client: redis.Redis) -> Count:
    """``PUBSUB NUMSUB`` on ``client``'s server (pub/sub is server-wide, whatever the
    database index; channels carry the test's prefix)."""

    def count(channel: str) -> int:
        return int(dict(client.pubsub_numsub(channel))[channel.encode()])

    return count


def memory_count(bus: MemoryBus) -> Count:
    return bus.subscribers


def _reached(count: Count, expected: Mapping[str, int]) -> bool | None:
    return True if all(count(channel) == n for channel, n in expected.items()) else None


async def subscribed(count: Count, expected: Mapping[str, int], *, within: float = 20.0) -> None:
    """Until each channel of ``expected`` has exactly that many subscribers."""
    await processes.observe(
        lambda: _reached(count, expected), within=within, what=f"subscribers per channel {dict(expected)}"
    )


def wait_subscribed(count: Count, expected: Mapping[str, int], *, within: float = 20.0) -> None:
    """:func:`subscribed`, for a test without an event loop."""
    processes.wait_until(
        lambda: _reached(count, expected) is not None,
        timeout=within,
        what=f"subscribers per channel {dict(expected)}",
    )
