"""Settings of the trader API (``sapphire api``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from sapphire import config


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
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    read_token: SecretStr = Field(default=SecretStr(""), description="Bearer token with scope read.")
    agent_token: SecretStr = Field(
        default=SecretStr(""),
        description="Bearer token with scopes read and agent (signals, orders).",
    )
    admin_token: SecretStr = Field(
        default=SecretStr(""), description="Bearer token with every scope, including risk control."
    )
