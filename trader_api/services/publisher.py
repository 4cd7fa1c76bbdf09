"""The event publisher: what a committed batch made visible, sent to the bus in order.

Only the writer's journal hands it anything, and only after the batch committed, so no
subscriber ever hears of a row that is not durable. Each batch becomes one
:class:`Publication` (latest-quote values, tick messages, order/fill/portfolio/risk events
with their sequence numbers), and publications go out strictly in commit order.

When the bus fails, the publication stays at the head of the backlog and is retried with
exponential backoff until the bus is back; meanwhile :meth:`Publisher.check` refuses new
writes with 503, so the backlog cannot grow without bound and a client is never told
"done" for something its subscribers cannot hear about. If the process dies with a
backlog, the data is still in the tables: a subscriber sees the gap in the sequence
numbers and resyncs from the API.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging

from sapphire import bus
from sapphire.trader_api import errors, metrics

log = logging.getLogger(__name__)

BACKOFF_FIRST_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 2.0
BATCH_PUBLICATIONS = 64
"""Publications merged into one bus round trip when a backlog has formed."""


@dataclasses.dataclass
class Publication:
    values: dict[str, str] = dataclasses.field(default_factory=dict)
    messages: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.values and not self.messages


class Publisher:
    def __init__(self, message_bus: bus.Bus, registry: metrics.Metrics) -> None:
        self.bus, self.metrics = message_bus, registry
        self.backlog: collections.deque[Publication] = collections.deque()
        self.failure: str | None = None
        """Why the last attempt failed; ``None`` while the bus takes what it is sent."""
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.enqueued = 0
        """Publications handed over so far; each one's number is its ticket."""
        self.delivered = 0
        self._progress = asyncio.Condition()

    def enqueue(self, publication: Publication) -> int:
        """Queue ``publication``; the ticket :meth:`wait_delivered` takes."""
        if publication.empty:
            return self.enqueued
        self.enqueued += 1
        self.backlog.append(publication)
        self._idle.clear()
        self._wake.set()
        return self.enqueued

    def check(self) -> None:
        """Refuse a new write (503) while committed events cannot be published."""
        if self.failure is not None:
            self.metrics.bus_errors.inc()
            raise errors.UnavailableError(
                f"message bus unavailable: {self.failure} "
                f"({len(self.backlog)} committed batches wait to be published)"
            )

    async def wait_delivered(self, ticket: int) -> None:
        """Wait until publication ``ticket`` is on the bus (callers bound it with asyncio.timeout)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.delivered >= ticket)

    async def idle(self) -> None:
        """Wait until everything enqueued so far has been published."""
        await self._idle.wait()

    async def run(self) -> None:
        delay = BACKOFF_FIRST_SECONDS
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.backlog:
                taken = [self.backlog[i] for i in range(min(BATCH_PUBLICATIONS, len(self.backlog)))]
                values: dict[str, str] = {}
                messages: list[tuple[str, str]] = []
                for publication in taken:
                    values.update(publication.values)
                    messages.extend(publication.messages)
                try:
                    await self.bus.write(values=values, messages=messages)
                except bus.BusUnavailableError as error:
                    if self.failure is None:
                        log.warning("the bus refused committed events; retrying with backoff: %s", error)
                    self.failure = str(error)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, BACKOFF_MAX_SECONDS)
                    continue
                for _ in taken:
                    self.backlog.popleft()
                async with self._progress:
                    self.delivered += len(taken)
                    self._progress.notify_all()
                if self.failure is not None:
                    log.warning("the bus is back: delivered the events held during the outage")
                self.failure, delay = None, BACKOFF_FIRST_SECONDS
            self._idle.set()
