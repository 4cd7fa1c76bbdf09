"""Settings of the operator (``sapphire operator run``)."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr

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
    agent_metrics_port: int = Field(
        default=9091,
        ge=0,
        le=65535,
        description="Port of each agent pod's /metrics (LLM calls, latency); 0 serves none.",
    )
    watch_server_timeout_seconds: int = Field(default=300, ge=10)
    watch_client_timeout_seconds: int = Field(default=330, ge=10)
    post_events: bool = True
    standalone: bool = Field(default=False, description="Skip peering: only when exactly one operator runs.")
    peering_priority: int = Field(default=0, description="Among peers, the highest priority acts.")
    agent_service_account: str = Field(default="sapphire-agent", description="ServiceAccount of agent pods.")
    migration_service_account: str = Field(
        default="sapphire-migration", description="ServiceAccount of migration pods."
    )
    backtest_service_account: str = Field(
        default="sapphire-backtest", description="ServiceAccount of backtest pods (no RBAC, no token)."
    )
    reconcile_interval_seconds: float = Field(
        default=10.0, gt=0, description="How often each TradingAgent is re-converged (drift repair)."
    )
    migration_poll_seconds: float = Field(
        default=2.0, gt=0, description="How often a running MigrationRun's or BacktestRun's pod is checked."
    )
    migration_retry_backoff_seconds: float = Field(
        default=10.0, gt=0, description="Delay before retry n is backoff * 2^(n-1), capped at 5 minutes."
    )
    status_refresh_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often trading figures are read from the trader API (by the agent's own reconcile).",
    )
    trader_api_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Timeout of one figures read; it runs inside the agent's reconcile, which waits for it.",
    )
    trader_api_token: SecretStr | None = Field(
        default=None, description="Read-scope token for the trader API figures; none disables them."
    )
