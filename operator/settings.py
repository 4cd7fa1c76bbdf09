"""Settings of the operator (``sapphire operator run``)."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field

from sapphire import config


class OperatorSettings(config.ServiceSettings):
    """Scope, peering and the defaults the operator gives every agent pod."""

    namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces to watch; empty with cluster_wide=false means 'default'.",
    )
    cluster_wide: bool = False
    peering_name: str = Field(
        default="sapphire", description="kopf peering object: one active operator per name."
    )
    agent_image: str = "ghcr.io/sapphire-ai/sapphire:latest"
    trader_api_url: AnyHttpUrl = AnyHttpUrl("http://trader-api.trading.svc:8000")
    agent_redis_url: config.RedisUrl = config.RedisUrl("redis://redis.trading.svc:6379/0")
    agent_token_secret: str = Field(default="sapphire-agent-token", description="Secret holding key 'token'.")
    health_port: int = Field(default=8080, ge=1, le=65535)
    metrics_port: int = Field(default=9090, ge=1, le=65535)
    watch_server_timeout_seconds: int = Field(default=300, ge=10)
    watch_client_timeout_seconds: int = Field(default=330, ge=10)
    post_events: bool = True
    status_refresh_seconds: float = Field(default=30.0, gt=0)
