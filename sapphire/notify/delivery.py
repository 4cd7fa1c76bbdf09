"""Sending through Apprise, with retries and backoff, one notification at a time.

Apprise answers each ``notify`` with a result that is false when any URL failed; a failed
notification is tried again after a growing delay, up to ``notify_max_attempts`` tries, and
the record says how it ended. Apprise URLs hold tokens: they are never logged, and a URL
Apprise cannot load is reported by its position and scheme only.
"""

from __future__ import annotations

import asyncio
import logging

import apprise

from sapphire.agents import supervision
from sapphire.notify.record import Record
from sapphire.notify.rules import Notification

log = logging.getLogger(__name__)


class Delivery:
    def __init__(
        self,
        urls: list[str],
        record: Record,
        *,
        max_attempts: int,
        backoff_max_seconds: float,
        stop: asyncio.Event,
    ) -> None:
        if not urls:
            raise ValueError("notify_urls: no Apprise URL given")
        self.apprise = apprise.Apprise()
        for number, url in enumerate(urls, start=1):
            if not self.apprise.add(url):
                scheme = url.split("://", 1)[0] if "://" in url else "no scheme"
                raise ValueError(
                    f"notify_urls: URL {number} of {len(urls)} ({scheme}://...) is not one Apprise knows"
                )
        self.record, self.stop = record, stop
        self.max_attempts, self.backoff_max_seconds = max_attempts, backoff_max_seconds
        self.queue: asyncio.Queue[Notification] = asyncio.Queue()

    def submit(self, notification: Notification) -> None:
        self.queue.put_nowait(notification)

    async def run(self) -> None:
        """Deliver queued notifications in order until cancelled."""
        while True:
            notification = await self.queue.get()
            try:
                await self.deliver(notification)
            finally:
                self.queue.task_done()

    async def deliver(self, notification: Notification) -> bool:
        """Try ``notification`` until Apprise reports success or the tries run out."""
        backoff = supervision.Backoff(initial=0.5, maximum=self.backoff_max_seconds)
        error = "stopped before the first try"
        for attempt in range(1, self.max_attempts + 1):
            await asyncio.to_thread(self.record.attempt, notification.event_id)
            result = await self.apprise.async_notify(
                body=notification.body,
                title=notification.title,
                notify_type=apprise.NotifyType(notification.level),
            )
            if result:
                await asyncio.to_thread(self.record.finish, notification.event_id, sent=True)
                log.info("notification sent", extra={"event": notification.event_id, "attempt": attempt})
                return True
            error = f"{result.failed_count} of the Apprise URLs failed (status {result.status})"
            if attempt == self.max_attempts:
                break
            delay = backoff.next_delay()
            log.warning(
                "notification failed; retrying",
                extra={"event": notification.event_id, "attempt": attempt, "retry_in": round(delay, 2)},
            )
            if await supervision.sleep_or_stop(self.stop, delay):
                break
        await asyncio.to_thread(self.record.finish, notification.event_id, sent=False, error=error)
        log.error("notification not delivered", extra={"event": notification.event_id, "error": error})
        return False
