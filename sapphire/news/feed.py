"""The news feed's I/O: poll the feeds, post new headlines, retry what failed.

Reliability:

* **Deduplication.** A headline is posted once per (symbol, text), whichever feed carries
  it and however often it is polled. The record is the trader API itself: at start the feed
  reads the headlines of the last ``news_max_age_seconds`` back from ``GET /v1/headlines``,
  so a restarted feed does not post them again; a headline is remembered only once the API
  has stored it (201), so one that failed is tried again.
* **Retries with backoff.** A feed that cannot be fetched or parsed is skipped for a growing
  delay (doubling, capped at ``news_backoff_max_seconds``), and the others go on. A trader
  API that is down or answers 5xx is retried with backoff, the headline kept in hand, until
  it answers or the feed is stopped.
* **Clear refusals.** A 401 or 403 (a wrong token) stops the process with that message: a
  feed that can never post should not pretend to run. A 422 names the field of the one
  headline the API refused, which is then skipped.
* **Politeness.** ETag and Last-Modified are sent back, so an unchanged feed costs a 304.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import feedparser
import httpx

from sapphire.agents import client, supervision
from sapphire.news import entries, tagging
from sapphire.news.settings import NewsFeedSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

REMEMBERED = 50_000
"""Headlines remembered for deduplication (the oldest are forgotten first)."""
SEED_LIMIT = 1000
"""Most headlines read back from the API at start (its page limit)."""


class NewsFeedError(RuntimeError):
    """The feed cannot work as configured (the trader API refuses its token)."""


class FeedUnavailableError(RuntimeError):
    """One feed could not be fetched or parsed this time."""


@dataclasses.dataclass
class _FeedState:
    url: str
    etag: str | None = None
    modified: str | None = None
    backoff: supervision.Backoff = dataclasses.field(default_factory=supervision.Backoff)
    retry_at: datetime | None = None


@dataclasses.dataclass
class PollReport:
    """What one poll did; also the running totals of :attr:`NewsFeed.totals`."""

    posted: int = 0
    duplicates: int = 0
    skipped: int = 0
    rejected: int = 0
    feeds_failed: int = 0
    api_retries: int = 0

    def add(self, other: PollReport) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


def utcnow() -> datetime:
    return datetime.now(UTC)


class NewsFeed:
    def __init__(
        self,
        settings: NewsFeedSettings,
        *,
        api: client.TraderApiClient,
        http: httpx.AsyncClient,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings, self.api, self.http, self.clock = settings, api, http, clock
        self.tagger = tagging.Tagger(settings.news_aliases)
        self.feeds = [_FeedState(str(url)) for url in settings.news_feed_urls]
        self.seen: collections.OrderedDict[tuple[str | None, str], None] = collections.OrderedDict()
        self.totals = PollReport()
        self.stop = asyncio.Event()
        self._skipped = 0
        self.unavailable_calls = 0
        """Calls the trader API answered with an outage so far (each one then retried)."""

    @property
    def max_age(self) -> timedelta:
        return timedelta(seconds=self.settings.news_max_age_seconds)

    def remember(self, key: tuple[str | None, str]) -> None:
        self.seen[key] = None
        self.seen.move_to_end(key)
        while len(self.seen) > REMEMBERED:
            self.seen.popitem(last=False)

    async def seed(self) -> int:
        """Remember what the API already holds (retried with backoff while it is down)."""
        since = self.clock() - self.max_age
        stored = await self._with_retries(lambda: self.api.headlines(since=since, limit=SEED_LIMIT))
        for headline in stored:
            self.remember(entries.dedup_key(headline.symbol, headline.text))
        return len(stored)

    async def fetch(self, feed: _FeedState) -> list[entries.Headline]:
        """The headlines in one feed now (none when it answers 304 Not Modified)."""
        headers = {"User-Agent": "sapphire-news-feed (+https://github.com/sapphire-ai/sapphire)"}
        if feed.etag:
            headers["If-None-Match"] = feed.etag
        if feed.modified:
            headers["If-Modified-Since"] = feed.modified
        try:
            response = await self.http.get(
                feed.url, headers=headers, timeout=self.settings.news_fetch_timeout_seconds
            )
        except httpx.HTTPError as error:
            raise FeedUnavailableError(f"{feed.url}: {type(error).__name__}: {error}") from error
        if response.status_code == 304:
            return []
        if response.status_code != 200:
            raise FeedUnavailableError(f"{feed.url}: HTTP {response.status_code}")
        parsed = feedparser.parse(response.content, response_headers=dict(response.headers))
        if parsed.bozo and not parsed.entries:
            raise FeedUnavailableError(f"{feed.url}: not RSS or Atom: {parsed.get('bozo_exception')}")
        feed.etag = response.headers.get("ETag")
        feed.modified = response.headers.get("Last-Modified")
        found, skipped = entries.headlines(
            parsed,
            url=feed.url,
            tagger=self.tagger,
            untagged=self.settings.news_untagged,
            now=self.clock(),
            max_age=self.max_age,
        )
        self._skipped += skipped
        return found

    async def poll_once(self) -> PollReport:
        """Fetch every feed that is due and post what is new; the report of this poll."""
        report = PollReport()
        self._skipped = 0
        for feed in self.feeds:
            now = self.clock()
            if feed.retry_at is not None and now < feed.retry_at:
                continue
            try:
                found = await self.fetch(feed)
            except FeedUnavailableError as error:
                delay = min(feed.backoff.next_delay() * 5, self.settings.news_backoff_max_seconds)
                feed.retry_at = now + timedelta(seconds=delay)
                report.feeds_failed += 1
                log.warning(
                    "news feed failed; retrying later", extra={"error": str(error), "retry_in": delay}
                )
                continue
            feed.backoff.reset()
            feed.retry_at = None
            for headline in found:
                if headline.key in self.seen:
                    report.duplicates += 1
                    continue
                await self._post(headline, report)
        report.skipped += self._skipped
        self.totals.add(report)
        return report

    async def _post(self, headline: entries.Headline, report: PollReport) -> None:
        def post() -> Awaitable[dict[str, Any]]:
            return self.api.post_headline(
                text=headline.text, source=headline.source, ts=headline.ts, symbol=headline.symbol
            )

        try:
            await self._with_retries(post, report=report)
        except client.ApiRejectedError as error:
            if error.status in (401, 403):
                raise NewsFeedError(
                    f"the trader API refuses the agent token (HTTP {error.status}): "
                    "check SAPPHIRE_AGENT_TOKEN"
                ) from error
            report.rejected += 1
            log.error(
                "headline refused by the trader API", extra={"error": str(error), "text": headline.text}
            )
        else:
            report.posted += 1
        # Posted or refused for good: either way it is not sent again.
        self.remember(headline.key)

    async def _with_retries(self, call: Callable[[], Awaitable[T]], *, report: PollReport | None = None) -> T:
        """``call()``, retried with backoff while the trader API is unavailable; the last
        :class:`~sapphire.agents.client.ApiUnavailableError` once :attr:`stop` is set."""
        backoff = supervision.Backoff(maximum=self.settings.news_backoff_max_seconds)
        while True:
            try:
                return await call()
            except client.ApiUnavailableError as error:
                delay = backoff.next_delay()
                (report or self.totals).api_retries += 1
                self.unavailable_calls += 1
                log.warning(
                    "trader API unavailable; retrying",
                    extra={"error": str(error), "retry_in": round(delay, 2)},
                )
                if await supervision.sleep_or_stop(self.stop, delay):
                    raise

    async def run(self) -> None:
        """Seed, then poll every ``news_poll_seconds`` until :attr:`stop` is set."""
        try:
            await self.seed()
            while not self.stop.is_set():
                report = await self.poll_once()
                log.info("news feed polled", extra=dataclasses.asdict(report))
                if await supervision.sleep_or_stop(self.stop, self.settings.news_poll_seconds):
                    return
        except client.ApiUnavailableError:
            if not self.stop.is_set():
                raise


async def run_news_feed(settings: NewsFeedSettings, *, once: bool = False) -> PollReport:
    """``sapphire feed --source news``: until SIGTERM, or one seed and poll with ``once``."""
    api = client.TraderApiClient(str(settings.trader_api_url), token=settings.agent_token.get_secret_value())
    async with httpx.AsyncClient(follow_redirects=True) as http:
        feed = NewsFeed(settings, api=api, http=http)
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, feed.stop.set)
        try:
            if once:
                await feed.seed()
                await feed.poll_once()
            else:
                await feed.run()
        finally:
            await api.aclose()
        return feed.totals
