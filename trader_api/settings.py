"""Settings of the trader API (``sapphire api``).

Money, prices and quantities are ``Decimal`` (give them as strings in the environment);
durations are seconds. Lists (``SAPPHIRE_INSTRUMENTS``) are JSON.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from sapphire import config
from sapphire.domain.symbols import SYMBOL_PATTERN as SYMBOL_PATTERN  # re-exported for older importers


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


class CcxtMarketDataSettings(BaseModel):
    """What a ccxt market feed reads besides the exchange id: one definition, shared by the
    trader API (``feed=ccxt``) and the feed process (``sapphire feed --source ccxt:<id>``); the
    live venue uses the same symbol map and origin."""

    feed_poll_seconds: float = Field(
        default=1.0, gt=0, description="ccxt feed without websockets: how often each ticker is polled."
    )
    ccxt_quote_currencies: dict[str, str] = Field(
        default_factory=lambda: {"USD": "USDT"},
        description="Sapphire quote currency -> the exchange's (JSON): BTC-USD trades as BTC/USDT. The one "
        "symbol map of live venues and the ccxt feed (core/symbols.py).",
    )
    ccxt_api_origin: str = Field(
        default="",
        pattern=r"^(https?://[A-Za-z0-9._\[\]:-]+)?$",
        description="Send every ccxt request (REST and websocket) to this origin instead of the "
        "exchange's: a private gateway, or the tests' local fake exchange. Empty: the exchange's own.",
    )

    def redacted_ccxt(self) -> dict[str, Any]:
        """These fields as ``config show`` prints them (the generic redaction flattens a dict)."""
        return {"ccxt_quote_currencies": dict(self.ccxt_quote_currencies)}


class TraderApiSettings(config.ServiceSettings, CcxtMarketDataSettings):
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
    backtest_reports_dir: Path | None = Field(
        default=None,
        description="Directory of finished backtests the dashboard lists: one subdirectory per backtest "
        "with its report.json and report.html, as `sapphire backtest -o DIR/NAME` writes them and as "
        "a BacktestRun writes to its report claim (mount the claim here). Unset: no backtests are listed.",
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
        default=Decimal("1000000"),
        ge=0,
        description="Cash of the paper account when it is first created. A live venue (venue=ccxt) "
        "seeds it from the exchange's balance of the cash asset instead.",
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
    agent_stale_after_seconds: float = Field(
        default=60.0,
        gt=0,
        description="An agent whose last heartbeat is older than this is not alive (GET /v1/agents' "
        "alive; the dashboard flags its row stale).",
    )
    feed: Literal["none", "ccxt"] = Field(
        default="none",
        description="Live market feed the API runs itself: none, or ccxt (prices from feed_exchange: "
        "websocket tickers where ccxt.pro has them, REST polling otherwise). Simulated and replayed "
        "data come from `sapphire feed`, its own process.",
    )
    feed_exchange: str = Field(
        default="binance",
        pattern=r"^[a-z0-9_]{2,32}$",
        description="ccxt exchange id the ccxt feed reads prices from (binance, kraken, coinbase...). "
        "Public market data: no keys needed.",
    )
    venue: Literal["paper", "ccxt"] = Field(
        default="paper",
        description="Where orders execute: paper (the built-in fill model, on whatever feed runs; with "
        "feed=ccxt this is paper trading on live prices, no keys) or ccxt (a live exchange account).",
    )
    venue_exchange: str = Field(
        default="binance",
        pattern=r"^[a-z0-9_]{2,32}$",
        description="ccxt exchange id of the live venue (spot markets).",
    )
    venue_sandbox: bool = Field(
        default=True,
        description="Trade the exchange's sandbox/testnet (ccxt set_sandbox_mode); false trades real money.",
    )
    venue_api_key: SecretStr | None = Field(
        default=None, description="Live venue API key; from a Secret only (SAPPHIRE_VENUE_API_KEY)."
    )
    venue_api_secret: SecretStr | None = Field(
        default=None, description="Live venue API secret; from a Secret only (SAPPHIRE_VENUE_API_SECRET)."
    )
    venue_api_password: SecretStr | None = Field(
        default=None, description="Live venue API passphrase, for exchanges that have one (OKX, KuCoin...)."
    )
    venue_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one request to the live venue (ccxt timeout)."
    )
    venue_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often the live venue's open orders are asked for fills."
    )
    venue_reconcile_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often open orders, recent trades and balances are reconciled with the exchange "
        "(also at every start).",
    )
    venue_retry_attempts: int = Field(
        default=6,
        ge=1,
        description="Attempts of a request that failed with a network error or timeout (backoff doubles).",
    )
    venue_retry_first_seconds: float = Field(
        default=0.25, gt=0, description="First backoff after a failed request to the live venue."
    )
    venue_reduce_tolerance: Decimal = Field(
        default=Decimal("10"),
        ge=0,
        description="Reconciliation: a difference between the engine and the exchange worth more than "
        "this (quote currency) moves risk to REDUCING.",
    )
    venue_halt_tolerance: Decimal = Field(
        default=Decimal("1000"),
        ge=0,
        description="Reconciliation: a difference worth more than this (quote currency), or an open order "
        "at the exchange the engine never sent, HALTs trading.",
    )

    @field_validator("instruments")
    @classmethod
    def _unique_symbols(cls, value: list[InstrumentConfig]) -> list[InstrumentConfig]:
        symbols = [instrument.symbol for instrument in value]
        duplicates = sorted({symbol for symbol in symbols if symbols.count(symbol) > 1})
        if duplicates:
            raise ValueError(f"instruments: duplicate symbols {', '.join(duplicates)}")
        return value

    @model_validator(mode="after")
    def _live_venue_keys(self) -> TraderApiSettings:
        if self.venue == "ccxt" and (self.venue_api_key is None or self.venue_api_secret is None):
            raise ValueError(
                "venue_api_key: the ccxt venue needs SAPPHIRE_VENUE_API_KEY and SAPPHIRE_VENUE_API_SECRET "
                "(from a Secret); for paper trading on live prices set venue=paper and feed=ccxt"
            )
        return self

    def redacted(self) -> dict[str, Any]:
        shown = super().redacted()
        shown["instruments"] = [instrument.model_dump(mode="json") for instrument in self.instruments]
        shown["risk"] = self.risk.model_dump(mode="json")
        shown.update(self.redacted_ccxt())
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
