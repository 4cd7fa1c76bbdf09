"""Settings of the notifier (``sapphire notify``), prefix ``SAPPHIRE_``.

``SAPPHIRE_NOTIFY_URLS`` holds the Apprise URLs (from the Secret ``sapphire-notify``, key
``urls``), separated by spaces, commas or new lines, for example
``slack://T000/B000/XXXX tgram://BOTTOKEN/CHATID json://hooks.example.com/sapphire``.
Lists are JSON (``SAPPHIRE_NOTIFY_KINDS='["risk", "fill"]'``).
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, AnyHttpUrl, Field, SecretStr

from sapphire import config


class Kind(StrEnum):
    RISK = "risk"
    """The risk state changed (a halt above all)."""
    FILL = "fill"
    """A fill at or above ``notify_fill_notional``."""
    AGENT_DEGRADED = "agent-degraded"
    """A TradingAgent became Degraded or Failed."""
    MIGRATION_FAILED = "migration-failed"
    """A MigrationRun failed."""
    RECONCILIATION = "reconciliation"
    """The live venue's reconciliation found differences with the exchange."""
    DAILY_PNL = "daily-pnl"
    """The day's PnL, once a day at ``notify_daily_summary_time``."""


class NotifySettings(config.ServiceSettings):
    """Where notifications go, which ones, and where the events come from."""

    notify_urls: SecretStr = Field(
        default=SecretStr(""), description="Apprise URLs (a secret: they hold tokens); required."
    )
    notify_kinds: list[Kind] = Field(
        default_factory=lambda: list(Kind), description="Which events notify (JSON list); default all."
    )
    notify_fill_notional: Decimal = Field(
        default=Decimal("100000"), gt=0, description="Fills of at least this quantity x price notify."
    )
    notify_daily_summary_time: datetime.time = Field(
        default=datetime.time(23, 55), description="UTC time of day the PnL summary is sent (HH:MM)."
    )
    notify_record_path: Path = Field(
        default=Path("sapphire-notify.db"),
        description="SQLite file recording every notification (on a volume: it makes 'at most once' "
        "survive restarts).",
    )
    notify_max_attempts: int = Field(default=6, ge=1, le=100, description="Tries per notification.")
    notify_backoff_max_seconds: float = Field(
        default=60.0, gt=0, description="Ceiling of the backoff between tries (and reconnects)."
    )
    notify_namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces whose TradingAgents and MigrationRuns are watched; empty watches none.",
    )
    notify_kube_poll_seconds: float = Field(
        default=15.0, gt=0, description="How often TradingAgent and MigrationRun status is read."
    )
    trader_api_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:8000"), description="The trader API (risk state, PnL)."
    )
    read_token: SecretStr = Field(default=SecretStr(""), description="Bearer token with scope read.")
    redis_url: config.RedisUrl = Field(
        default=config.RedisUrl("redis://127.0.0.1:6379/0"),
        validation_alias=AliasChoices("SAPPHIRE_REDIS_URL", "REDIS_URL"),
        description="The Redis the trader API publishes its events on.",
    )
    redis_key_prefix: str = Field(
        default="sapphire:", description="The trader API's SAPPHIRE_REDIS_KEY_PREFIX."
    )

    def urls(self) -> list[str]:
        text = self.notify_urls.get_secret_value().replace(",", " ")
        return text.split()
