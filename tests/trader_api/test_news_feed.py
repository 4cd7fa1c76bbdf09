"""The news feed against fixture RSS and Atom feeds served over local HTTP, posting to a
real ``sapphire api`` (Postgres, Redis): tagged, deduplicated, retried, and read by the
sentiment analyst."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from sapphire.agents import client
from sapphire.agents.analysts.sentiment import SentimentAnalyst
from sapphire.news import feed as news_feed
from sapphire.news.settings import NewsFeedSettings
from tests.support import http_server, processes, services, trader_api

FIXTURES = Path(__file__).parents[1] / "news" / "fixtures"


def render_fixture(name: str, now: datetime) -> bytes:
    """A fixture feed with its ``{{ago:N}}`` (RFC 822) and ``{{ago-iso:N}}`` dates filled in."""
    text = (FIXTURES / name).read_text()
    for minutes in range(0, 121):
        moment = now - timedelta(minutes=minutes)
        text = text.replace(f"{{{{ago:{minutes}}}}}", format_datetime(moment))
        text = text.replace(f"{{{{ago-iso:{minutes}}}}}", moment.isoformat())
    return text.encode()


def serve_feed(server: http_server.LocalHttpServer, path: str, body: bytes, content_type: str) -> str:
    """Serve ``body`` at ``path`` with an ETag, answering 304 to a matching If-None-Match."""
    etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'

    def answer(request: http_server.Request) -> http_server.Response:
        if request.headers.get("if-none-match") == etag:
            return http_server.Response(304, headers={"ETag": etag})
        return http_server.Response(200, body, {"Content-Type": content_type, "ETag": etag})

    server.routes[path] = answer
    return f"{server.url}{path}"


@pytest.fixture
def api(trader_database_url: str, redis_server: services.RedisServer) -> Iterator[trader_api.TraderApi]:
    """A trader API of this test's own; no built-in feed, so headlines come only from ours."""
    with trader_api.running_trader_api(
        database_url=trader_database_url, redis_url=redis_server.fresh_database(), redis_key_prefix="news:"
    ) as running:
        yield running


@pytest.fixture
def feeds() -> Iterator[http_server.LocalHttpServer]:
    with http_server.local_http_server() as server:
        yield server


def settings_for(api_url: str, *urls: str, **fields: object) -> NewsFeedSettings:
    return NewsFeedSettings.model_validate(
        {
            "news_feed_urls": list(urls),
            "trader_api_url": api_url,
            "agent_token": trader_api.AGENT_TOKEN,
            **fields,
        }
    )


async def stored(api: trader_api.TraderApi) -> set[tuple[str | None, str, str]]:
    reader = client.TraderApiClient(api.url, token=trader_api.READ_TOKEN)
    try:
        return {(h.symbol, h.text, h.source or "") for h in await reader.headlines(limit=1000)}
    finally:
        await reader.aclose()


@contextlib.asynccontextmanager
async def new_feed(
    settings: NewsFeedSettings, http: httpx.AsyncClient, **clock: Callable[[], datetime]
) -> AsyncIterator[news_feed.NewsFeed]:
    api = client.TraderApiClient(str(settings.trader_api_url), token=settings.agent_token.get_secret_value())
    try:
        yield news_feed.NewsFeed(settings, api=api, http=http, **clock)
    finally:
        await api.aclose()


EXPECTED = {
    ("BTC-USD", "Bitcoin surges to a record high as ETF inflows soar", "Markets Daily"),
    ("AAPL", "Apple beats earnings expectations; shares jump on strong iPhone sales", "Markets Daily"),
    ("BTC-USD", "Ethereum and bitcoin slide after a major exchange hack", "Markets Daily"),
    ("ETH-USD", "Ethereum and bitcoin slide after a major exchange hack", "Markets Daily"),
    ("ETH-USD", "$ETH gains strongly as developers ship a successful upgrade", "Crypto Wire"),
}


@pytest.fixture
def two_feeds(feeds: http_server.LocalHttpServer) -> list[str]:
    now = datetime.now(UTC)
    return [
        serve_feed(feeds, "/markets.rss", render_fixture("markets.rss", now), "application/rss+xml"),
        serve_feed(feeds, "/crypto.atom", render_fixture("crypto.atom", now), "application/atom+xml"),
    ]


async def test_rss_and_atom_headlines_are_tagged_deduplicated_and_posted(
    api: trader_api.TraderApi, feeds: http_server.LocalHttpServer, two_feeds: list[str]
) -> None:
    assert await stored(api) == set()
    async with httpx.AsyncClient() as http:
        async with new_feed(settings_for(api.url, *two_feeds), http) as feed:
            assert await feed.seed() == 0
            report = await feed.poll_once()
            # markets.rss: 3 tagged entries (one names two symbols), one without a symbol, one
            # from 2020; crypto.atom: the RSS's first headline again (in capitals), one $ETH,
            # and "Ethiopia", which is not ETH.
            assert report == news_feed.PollReport(posted=5, duplicates=1, skipped=3)
            assert await stored(api) == EXPECTED

            again = await feed.poll_once()
            assert again == news_feed.PollReport()  # both feeds answered 304 Not Modified
            assert feeds.received("/markets.rss")[-1].headers["if-none-match"].startswith('"')

        async with new_feed(settings_for(api.url, *two_feeds), http) as restarted:
            assert await restarted.seed() == 5  # what the API holds is the dedup record
            assert await restarted.poll_once() == news_feed.PollReport(duplicates=6, skipped=3)
    assert len(await stored(api)) == 5


async def test_the_sentiment_analyst_turns_the_posted_headlines_into_signals(
    api: trader_api.TraderApi, two_feeds: list[str]
) -> None:
    async with httpx.AsyncClient() as http, new_feed(settings_for(api.url, *two_feeds), http) as feed:
        await feed.poll_once()
    reader = client.TraderApiClient(api.url, token=trader_api.READ_TOKEN)
    try:
        headlines = await reader.headlines(limit=1000)
    finally:
        await reader.aclose()
    for headline in sorted(headlines, key=lambda h: h.ts):
        print(f"headline {headline.symbol}: {headline.text!r} ({headline.source})")
    analyst = SentimentAnalyst(agent="sentiment-news")
    for headline in headlines:
        analyst.observe_headline(headline)
    now = datetime.now(UTC)
    signals = {symbol: analyst.evaluate(symbol, now) for symbol in ("AAPL", "BTC-USD", "ETH-USD")}
    for symbol, signal in signals.items():
        print(f"{symbol}: {signal.direction if signal else 'none'} {signal.rationale if signal else ''}")
    aapl = signals["AAPL"]
    assert aapl is not None
    assert aapl.direction == "long"
    assert "Apple beats earnings" in aapl.rationale


async def test_a_trader_api_that_is_down_is_retried_until_it_takes_the_headlines(
    trader_database_url: str, redis_server: services.RedisServer, feeds: http_server.LocalHttpServer
) -> None:
    url = serve_feed(
        feeds, "/markets.rss", render_fixture("markets.rss", datetime.now(UTC)), "application/rss+xml"
    )
    later = trader_api.TraderApiProcess(
        database_url=trader_database_url,
        redis_url=redis_server.fresh_database(),
        settings={"redis_key_prefix": "late:"},
    )
    assert not processes.port_open(later.port)
    settings = settings_for(later.url, url, news_backoff_max_seconds=0.5)
    async with httpx.AsyncClient() as http, new_feed(settings, http) as feed:
        polling = asyncio.create_task(feed.poll_once())
        await processes.observe(lambda: feed.unavailable_calls >= 2 or None, within=30, what="refused posts")
        assert not polling.done()
        await asyncio.to_thread(later.start)
        try:
            report = await asyncio.wait_for(polling, timeout=60)
            assert report.posted == 4
            assert report.api_retries >= 2
            async with httpx.AsyncClient(
                base_url=later.url, headers={"Authorization": f"Bearer {trader_api.READ_TOKEN}"}
            ) as reader:
                assert len((await reader.get("/v1/headlines")).json()) == 4
        finally:
            await asyncio.to_thread(later.stop)


async def test_a_failing_feed_backs_off_while_the_others_are_posted(
    api: trader_api.TraderApi, feeds: http_server.LocalHttpServer
) -> None:
    now = datetime.now(UTC)
    good = serve_feed(feeds, "/crypto.atom", render_fixture("crypto.atom", now), "application/atom+xml")
    feeds.routes["/broken.rss"] = lambda _: http_server.Response(503, b"maintenance")
    broken = f"{feeds.url}/broken.rss"
    clock = [now]
    settings = settings_for(api.url, broken, good)
    async with httpx.AsyncClient() as http, new_feed(settings, http, clock=lambda: clock[0]) as feed:
        assert await feed.poll_once() == news_feed.PollReport(posted=2, skipped=1, feeds_failed=1)
        assert len(feeds.received("/broken.rss")) == 1
        await feed.poll_once()
        assert len(feeds.received("/broken.rss")) == 1  # backing off: not asked again yet
        feeds.routes["/broken.rss"] = lambda _: http_server.Response(
            200, render_fixture("markets.rss", now), {"Content-Type": "application/rss+xml"}
        )
        clock[0] = now + timedelta(seconds=settings.news_backoff_max_seconds)
        report = await feed.poll_once()
    assert len(feeds.received("/broken.rss")) == 2
    assert report.posted == 3  # its BTC headline was already posted from the Atom feed
    assert report.duplicates == 1


async def test_a_wrong_token_stops_the_feed_with_a_clear_error(
    api: trader_api.TraderApi, two_feeds: list[str]
) -> None:
    settings = settings_for(api.url, *two_feeds, agent_token="not-the-agent-token")
    async with httpx.AsyncClient() as http, new_feed(settings, http) as feed:
        with pytest.raises(news_feed.NewsFeedError, match=r"refuses the agent token \(HTTP 401\)"):
            await feed.poll_once()
    assert await stored(api) == set()


def test_sapphire_feed_source_news_once_posts_and_prints_its_totals(
    api: trader_api.TraderApi, two_feeds: list[str]
) -> None:
    env = trader_api.api_environment(database_url="", redis_url="", port=0, settings={})
    env |= {
        "SAPPHIRE_NEWS_FEED_URLS": json.dumps(two_feeds),
        "SAPPHIRE_TRADER_API_URL": api.url,
        "SAPPHIRE_AGENT_TOKEN": trader_api.AGENT_TOKEN,
    }
    command = [sys.executable, "-m", "sapphire", "feed", "--source", "news", "--once"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["posted"] == 5
    with api.client(trader_api.READ_TOKEN) as reader:
        assert len(reader.get("/v1/headlines").json()) == 5
