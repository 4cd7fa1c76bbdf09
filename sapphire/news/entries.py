"""A parsed feed becomes headlines: one per symbol it mentions, dated, with its source.

Pure: ``feedparser``'s result in, :class:`Headline` values out, the clock passed in.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sapphire.news import tagging

MAX_TEXT = 5000
MAX_SOURCE = 128
"""The trader API's limits on ``HeadlineCreate.text`` and ``source``."""


@dataclasses.dataclass(frozen=True)
class Headline:
    symbol: str | None
    text: str
    source: str
    ts: datetime

    @property
    def key(self) -> tuple[str | None, str]:
        """What makes two headlines the same one: the symbol and the words, in any case or spacing."""
        return dedup_key(self.symbol, self.text)


def dedup_key(symbol: str | None, text: str) -> tuple[str | None, str]:
    return symbol, " ".join(text.split()).casefold()


def published(entry: Any, now: datetime) -> datetime:
    """When the entry says it was published (or updated), never later than ``now``."""
    for field in ("published_parsed", "updated_parsed"):
        moment: time.struct_time | None = entry.get(field)
        if moment is not None:
            return min(datetime(*moment[:6], tzinfo=UTC), now)
    return now


def source_of(parsed: Any, url: str) -> str:
    title = " ".join(str(parsed.feed.get("title", "")).split())
    return (title or urlsplit(url).hostname or url)[:MAX_SOURCE]


def headlines(
    parsed: Any,
    *,
    url: str,
    tagger: tagging.Tagger,
    untagged: str,
    now: datetime,
    max_age: timedelta,
) -> tuple[list[Headline], int]:
    """The headlines of a parsed feed, and how many entries were left out (no title, too old,
    or no symbol while ``untagged`` is ``skip``)."""
    source = source_of(parsed, url)
    found: list[Headline] = []
    skipped = 0
    for entry in parsed.entries:
        text = " ".join(str(entry.get("title", "")).split())[:MAX_TEXT]
        ts = published(entry, now)
        symbols: list[str | None] = list(tagger.symbols(text))
        if not symbols and untagged == "market-wide":
            symbols = [None]
        if not text or now - ts > max_age or not symbols:
            skipped += 1
            continue
        found += [Headline(symbol=symbol, text=text, source=source, ts=ts) for symbol in symbols]
    return found, skipped
