"""Settings of one agent process (``sapphire agent run``), set by the operator's env wiring."""

from __future__ import annotations

from pydantic import AliasChoices, AnyHttpUrl, Field, SecretStr

from sapphire import config


class AgentSettings(config.ServiceSettings):
    """One agent: its role, instruments, and how it reaches the trader API and Redis."""

    agent_name: str = Field(default="local-agent", min_length=1)
    role: str = Field(default="momentum")
    symbols: list[str] = Field(default_factory=list, description="Empty means all-market mode.")
    trader_api_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8000")
    redis_url: config.RedisUrl = Field(
        default=config.RedisUrl("redis://127.0.0.1:6379/0"),
        validation_alias=AliasChoices("SAPPHIRE_REDIS_URL", "REDIS_URL"),
    )
    agent_token: SecretStr = Field(default=SecretStr(""), description="Bearer token with scope agent.")
    interval_seconds: float = Field(default=5.0, gt=0)
    model_provider: str = Field(default="", description="vertex, openai-compatible, or empty for none.")
    model_name: str = ""
    model_endpoint: str = ""
    model_api_key: SecretStr = Field(default=SecretStr("unused"))
    model_timeout_seconds: float = Field(default=10.0, gt=0)
    model_max_calls_per_minute: int = Field(default=30, ge=1)
