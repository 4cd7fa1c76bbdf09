"""The message bus: latest values by key, and pub/sub channels.

One bus for all of Sapphire: the trader API writes to it, the agents and ``sapphire notify``
subscribe and publish through the same classes, and ``sapphire up`` hands one in-process bus
to all of them. It imports nothing of the trader API, so an agent can use it without the API.

Why pub/sub and not streams: everything a subscriber could miss is also kept elsewhere.
The latest quote is a key, bars, orders, fills and signals are rows in the database, and
the HTTP API serves all of them. A tick or an event is only worth something while it is
fresh, so fire-and-forget fan-out (one PUBLISH, no per-consumer state, nothing to trim)
is the right trade. Streams would buy replay and consumer groups, which would need MAXLEN
trimming and acknowledgement bookkeeping that nobody here needs: an agent that restarts
reads the current state over HTTP and then listens again.

Names (every one starts with the configured prefix, ``sapphire:`` by default):

* ``{prefix}quote:{SYMBOL}``  string key: the latest tick as JSON
  ``{"symbol","bid","ask","last","size","ts"}`` (decimals as strings, ts ISO-8601 UTC);
* ``{prefix}ticks:{SYMBOL}``  channel: the newest tick of each ingested batch (one message per
  symbol per batch: subscribers conflate), same JSON;
* ``{prefix}signals``         channel: every stored signal, as ``GET /v1/signals`` shows it;
* ``{prefix}risk``            channel: risk changes ``{"state","reason","limits"}``;
* ``{prefix}orders`` / ``{prefix}fills`` channels: order updates and fills;
* ``{prefix}events``          channel: all of the above but ticks, as ``{"type","data"}``
  (what ``GET /v1/events`` streams).

``redis://`` selects :class:`~sapphire.bus.redis_bus.RedisBus`; ``memory://``
selects :class:`~sapphire.bus.memory.MemoryBus`, for ``sapphire up`` in one process.
"""

from sapphire.bus.base import Bus, BusUnavailableError, Message, Subscription
from sapphire.bus.memory import MemoryBus
from sapphire.bus.names import Names
from sapphire.bus.redis_bus import RedisBus


def open_bus(url: str, *, timeout: float = 1.0) -> Bus:
    """The bus for ``url``: ``redis://``/``rediss://`` or ``memory://``."""
    if url.startswith("memory:"):
        return MemoryBus()
    if url.startswith(("redis:", "rediss:")):
        return RedisBus(url, timeout=timeout)
    raise ValueError(f"redis_url: unsupported scheme in {url.split('://', 1)[0]!r}")


__all__ = [
    "Bus",
    "BusUnavailableError",
    "MemoryBus",
    "Message",
    "Names",
    "RedisBus",
    "Subscription",
    "open_bus",
]
