"""Settings of the market feed (``sapphire feed --source simulated|replay|ccxt:<exchange>``),
prefix ``SAPPHIRE_``.

The command-line options ``--data``, ``--shift`` and ``--speed`` override the variables of
the same meaning. The ccxt source's own settings (``feed_poll_seconds``,
``ccxt_quote_currencies``, ``ccxt_api_origin``) are the trader API's, defined once in
:class:`~sapphire.trader_api.settings.CcxtMarketDataSettings`; the exchange id is the
source's (``--source ccxt:binance``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator

from sapphire import config
from sapphire.trader_api.settings import SYMBOL_PATTERN, CcxtMarketDataSettings

MAX_BATCH = 5000
"""The most ticks ``POST /v1/ticks`` takes in one body."""


class MarketFeedSettings(config.ServiceSettings, CcxtMarketDataSettings):
    """Where the ticks come from, how fast, and where they go."""

    trader_api_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:8000"), description="The trader API that ingests the ticks."
    )
    agent_token: SecretStr = Field(
        default=SecretStr(""), description="Bearer token with scope agent (POST /v1/ticks)."
    )
    feed_symbols: list[str] = Field(
        default_factory=list,
        description="Symbols the simulated or ccxt feed quotes (JSON list); empty: every instrument "
        "the trader API lists (GET /v1/instruments), whose tick and lot sizes the simulated feed "
        "uses either way. The ccxt feed maps them to the exchange's (ccxt_quote_currencies) and "
        "skips, with a warning, those the exchange does not list.",
    )
    feed_seed: int = Field(default=7, description="Seed of the simulated feed (same seed, same prices).")
    feed_interval_seconds: float = Field(
        default=1.0, gt=0, description="Simulated feed: time between two ticks of a symbol."
    )
    feed_replay_path: Path | None = Field(
        default=None, description="Replay feed: CSV of ticks (symbol,bid,ask,last,size,ts); --data."
    )
    feed_shift: str = Field(
        default="",
        description="Replay feed: empty keeps the recorded timestamps; a number of seconds (may be "
        "negative) moves them all by that much; `now` moves them so the first tick is now. --shift.",
    )
    feed_speed: float = Field(
        default=1.0,
        ge=0,
        description="Ticks are sent as their timestamps are spaced, this many times faster; 0 sends "
        "them as fast as the API takes them. --speed. The ccxt feed ignores it: live ticks are "
        "sent as they arrive.",
    )
    feed_max_batch: int = Field(
        default=1000,
        ge=1,
        le=MAX_BATCH,
        description="Most ticks in one POST /v1/ticks (ticks already due). The ccxt feed also keeps "
        "at most this many newer ticks while a batch waits for an unavailable API, the oldest "
        "dropped (and counted).",
    )
    feed_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Timeout of one POST /v1/ticks, and of one request to the ccxt exchange.",
    )
    feed_backoff_max_seconds: float = Field(
        default=30.0, gt=0, description="Ceiling of the retry backoff while the trader API is unavailable."
    )

    def redacted(self) -> dict[str, Any]:
        shown = super().redacted()
        shown.update(self.redacted_ccxt())
        return shown

    @field_validator("feed_symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        for symbol in value:
            if not re.match(SYMBOL_PATTERN, symbol):
                raise ValueError(f"feed_symbols: {symbol!r} is not a symbol like BTC-USD or AAPL")
        return value

    @field_validator("feed_shift")
    @classmethod
    def _shift(cls, value: str) -> str:
        value = value.strip()
        if value in ("", "now"):
            return value
        try:
            float(value)
        except ValueError:
            raise ValueError(
                f"feed_shift: expected nothing, `now` or a number of seconds, got {value!r}"
            ) from None
        return value
