"""Settings of the trader API (``sapphire api``).

Money, prices and quantities are ``Decimal`` (give them as strings in the environment);
durations are seconds. Lists (``SAPPHIRE_INSTRUMENTS``) are JSON.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator

from sapphire import config

SYMBOL_PATTERN = r"^[A-Z0-9]{1,12}(-[A-Z0-9]{1,12})?$"
"""Instrument symbols: ``BTC-USD``, ``ETH-USD``, ``AAPL``."""


class InstrumentConfig(BaseModel):
    """One tradable instrument."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = Field(pattern=SYMBOL_PATTERN, description="Upper-case symbol, e.g. BTC-USD.")
    tick_size: Decimal = Field(gt=0, description="Smallest price increment; limit prices are multiples.")
    lot_size: Decimal = Field(gt=0, description="Smallest quantity increment; quantities are multiples.")
    quote_currency: str = Field(default="USD", min_length=1, max_length=12, description="Currency of prices.")


DEFAULT_INSTRUMENTS = (
    InstrumentConfig(symbol="BTC-USD", tick_size=Decimal("0.01"), lot_size=Decimal("0.0001")),
    InstrumentConfig(symbol="ETH-USD", tick_size=Decimal("0.01"), lot_size=Decimal("0.001")),
    InstrumentConfig(symbol="AAPL", tick_size=Decimal("0.01"), lot_size=Decimal("1")),
)


class RiskLimitsConfig(BaseModel):
    """Pre-trade limits and the monitors that halt trading; all notionals in the quote currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_order_notional: Decimal = Field(
        default=Decimal("100000"), gt=0, description="Largest quantity x price of one order."
    )
    max_position_notional: Decimal = Field(
        default=Decimal("250000"), gt=0, description="Largest |position| x price per instrument."
    )
    max_gross_exposure: Decimal = Field(
        default=Decimal("1000000"), gt=0, description="Largest sum of |position| x mark over instruments."
    )
    max_daily_loss: Decimal = Field(
        default=Decimal("50000"), gt=0, description="Equity loss since the UTC day began that halts trading."
    )
    max_drawdown: Decimal = Field(
        default=Decimal("0.2"),
        gt=0,
        le=1,
        description="Fractional fall of equity from its peak that halts trading (0.2 = 20%).",
    )
    price_collar_bps: Decimal = Field(
        default=Decimal("500"),
        gt=0,
        description="Farthest a limit price may sit from the last quote's mid, in basis points.",
    )
    stale_quote_seconds: Decimal = Field(
        default=Decimal("10"), gt=0, description="Quotes older than this refuse new orders."
    )


class TraderApiSettings(config.ServiceSettings):
    """Everything the trader API reads from its environment (prefix ``SAPPHIRE_``)."""

    database_url: config.DatabaseDsn = Field(
        default=config.DatabaseDsn("sqlite+aiosqlite:///./sapphire.db"),
        validation_alias=AliasChoices("SAPPHIRE_DATABASE_URL", "DATABASE_URL"),
        description="Postgres (postgresql+psycopg://) or, for the embedded mode, SQLite.",
    )
    redis_url: config.RedisUrl = Field(
        default=config.RedisUrl("redis://127.0.0.1:6379/0"),
        validation_alias=AliasChoices("SAPPHIRE_REDIS_URL", "REDIS_URL"),
        description="Redis for latest quotes and pub/sub; memory:// for the in-process bus.",
    )
    redis_key_prefix: str = Field(
        default="sapphire:",
        pattern=r"^[A-Za-z0-9_.:-]{0,64}$",
        description="Prefix of every Redis key and pub/sub channel, so deployments can share a server.",
    )
    redis_timeout_seconds: float = Field(
        default=1.0, gt=0, description="Socket timeout of Redis calls; an outage answers 503 this fast."
    )
    host: str = Field(default="127.0.0.1", description="Address uvicorn binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port uvicorn binds.")
    advertise_url: str = Field(
        default="",
        pattern=r"^(https?://[A-Za-z0-9._\[\]:-]+)?$",
        description="Where other replicas forward engine writes while this one is the writer "
        "(http://POD_IP:8000 on Kubernetes); empty means http://HOST:PORT.",
    )
    writer_max_batch: int = Field(
        default=512,
        ge=1,
        le=100_000,
        description="Most commands the order engine commits in one transaction.",
    )
    writer_election_seconds: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="How often a follower replica runs for writer, and an idle writer checks its epoch.",
    )
    forward_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Timeout of a write forwarded from a follower replica to the writer."
    )
    read_token: SecretStr = Field(default=SecretStr(""), description="Bearer token with scope read.")
    agent_token: SecretStr = Field(
        default=SecretStr(""),
        description="Bearer token with scopes read and agent (signals, orders).",
    )
    admin_token: SecretStr = Field(
        default=SecretStr(""), description="Bearer token with every scope, including risk control."
    )
    instruments: list[InstrumentConfig] = Field(
        default_factory=lambda: list(DEFAULT_INSTRUMENTS),
        description="Tradable instruments (JSON list); empty means all-market mode.",
    )
    default_tick_size: Decimal = Field(
        default=Decimal("0.01"), gt=0, description="Tick size of instruments in all-market mode."
    )
    default_lot_size: Decimal = Field(
        default=Decimal("0.0001"), gt=0, description="Lot size of instruments in all-market mode."
    )
    default_quote_currency: str = Field(
        default="USD", min_length=1, description="Quote currency of instruments in all-market mode."
    )
    initial_cash: Decimal = Field(
        default=Decimal("1000000"), ge=0, description="Cash of the paper account when it is first created."
    )
    fee_bps: Decimal = Field(
        default=Decimal("1"), ge=0, le=1000, description="Paper venue fee per fill, basis points of notional."
    )
    slippage_bps: Decimal = Field(
        default=Decimal("2"),
        ge=0,
        le=1000,
        description="Paper venue: market orders fill this many bps beyond the touch (bid or ask).",
    )
    risk: RiskLimitsConfig = Field(
        default_factory=RiskLimitsConfig,
        description="Initial risk limits (JSON); admins change them at PUT /v1/risk/limits.",
    )
    events_heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="Idle SSE streams get a comment this often, to keep proxies open."
    )

    @field_validator("instruments")
    @classmethod
    def _unique_symbols(cls, value: list[InstrumentConfig]) -> list[InstrumentConfig]:
        symbols = [instrument.symbol for instrument in value]
        duplicates = sorted({symbol for symbol in symbols if symbols.count(symbol) > 1})
        if duplicates:
            raise ValueError(f"instruments: duplicate symbols {', '.join(duplicates)}")
        return value

    def redacted(self) -> dict[str, Any]:
        shown = super().redacted()
        shown["instruments"] = [instrument.model_dump(mode="json") for instrument in self.instruments]
        shown["risk"] = self.risk.model_dump(mode="json")
        return shown

    @property
    def advertise_address(self) -> str:
        return self.advertise_url or f"http://{self.host}:{self.port}"

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the async driver SQLAlchemy needs (psycopg 3 or aiosqlite)."""
        url = str(self.database_url)
        for plain, driver in (
            ("postgresql://", "postgresql+psycopg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url
