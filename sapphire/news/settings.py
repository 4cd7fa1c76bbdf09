"""Settings of the news feed (``sapphire feed --source news``), prefix ``SAPPHIRE_``.

Lists and maps are JSON in the environment::

    SAPPHIRE_NEWS_FEED_URLS='["https://example.com/markets.rss", "https://example.com/crypto.atom"]'
    SAPPHIRE_NEWS_ALIASES='{"BTC-USD": ["BTC", "Bitcoin"], "SOL-USD": ["SOL", "Solana"]}'
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator

from sapphire import config
from sapphire.domain.symbols import SYMBOL_PATTERN
from sapphire.news import tagging


class NewsFeedSettings(config.ServiceSettings):
    """Where the headlines come from, how they are tagged, and where they go."""

    news_feed_urls: list[AnyHttpUrl] = Field(
        default_factory=list, min_length=1, description="RSS or Atom feeds to poll (JSON list); required."
    )
    news_aliases: dict[str, list[str]] = Field(
        default_factory=lambda: {symbol: list(names) for symbol, names in tagging.DEFAULT_ALIASES.items()},
        description="Symbol -> the words that mean it in a headline (JSON). Upper-case aliases are "
        "tickers (matched in upper case only), others names (any case); the symbol is always its own alias.",
    )
    news_untagged: Literal["skip", "market-wide"] = Field(
        default="skip",
        description="Headlines that mention no symbol: skip them, or post them without a symbol "
        "(the sentiment analyst counts those for every symbol).",
    )
    news_poll_seconds: float = Field(default=60.0, gt=0, description="Pause between two polls of the feeds.")
    news_max_age_seconds: float = Field(
        default=86_400.0, gt=0, description="Entries published longer ago than this are not posted."
    )
    news_fetch_timeout_seconds: float = Field(default=10.0, gt=0, description="Timeout of one feed request.")
    news_backoff_max_seconds: float = Field(
        default=300.0, gt=0, description="Ceiling of the retry backoff for a failing feed or trader API."
    )
    trader_api_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:8000"), description="The trader API that takes the headlines."
    )
    agent_token: SecretStr = Field(
        default=SecretStr(""), description="Bearer token with scope agent (POST /v1/headlines)."
    )

    @field_validator("news_aliases")
    @classmethod
    def _valid_aliases(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for symbol, names in value.items():
            if not re.match(SYMBOL_PATTERN, symbol):
                raise ValueError(f"news_aliases: {symbol!r} is not a symbol like BTC-USD or AAPL")
            blank = [name for name in names if not name.strip()]
            if blank:
                raise ValueError(f"news_aliases: {symbol} has an empty alias")
        return value
