"""The message bus: latest values by key, and pub/sub channels.

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

``redis://`` selects :class:`~sapphire.trader_api.bus.redis_bus.RedisBus`; ``memory://``
selects :class:`~sapphire.trader_api.bus.memory.MemoryBus`, for ``sapphire up`` in one process.
"""

from sapphire.trader_api.bus.base import Bus, BusUnavailableError, Message, Subscription, open_bus
from sapphire.trader_api.bus.names import Names

__all__ = ["Bus", "BusUnavailableError", "Message", "Names", "Subscription", "open_bus"]
