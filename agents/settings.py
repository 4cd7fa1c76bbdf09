"""Settings of one agent process (``sapphire agent run``), set by the operator's env wiring.

Every field is read from ``SAPPHIRE_<FIELD>`` (upper case), for example:

* ``SAPPHIRE_AGENT_NAME``, ``SAPPHIRE_ROLE`` (momentum, mean-reversion, volatility,
  microstructure, sentiment, strategist, executor), ``SAPPHIRE_SYMBOLS`` (a JSON list;
  ``[]`` is all-market mode), ``SAPPHIRE_INTERVAL_SECONDS``;
* ``SAPPHIRE_TRADER_API_URL``, ``SAPPHIRE_AGENT_TOKEN``, ``SAPPHIRE_REDIS_URL`` (or
  ``REDIS_URL``), ``SAPPHIRE_REDIS_KEY_PREFIX``;
* ``SAPPHIRE_MODEL_PROVIDER`` / ``_NAME`` / ``_ENDPOINT`` / ``_API_KEY`` / ``_PROJECT`` /
  ``_LOCATION`` / ``_TIMEOUT_SECONDS`` / ``_MAX_CALLS_PER_MINUTE`` (``spec.model``);
* ``SAPPHIRE_RISK_MAX_ORDER_NOTIONAL`` / ``_MAX_POSITION_NOTIONAL`` / ``_MAX_GROSS_EXPOSURE`` /
  ``_MAX_DAILY_LOSS``, and the optional ``_STOP_LOSS_BPS`` / ``_TAKE_PROFIT_BPS`` /
  ``_TRAILING_STOP_BPS`` of the stop and take-profit attached to every entry (``spec.risk``,
  executor only).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, AnyHttpUrl, Field, SecretStr, model_validator

from sapphire import config
from sapphire.resources import tradingagent


def _spec_default(model: type[Any], field: str) -> Any:
    """The default the CRD gives ``field`` (the CRD is generated from this model): an agent
    started without the setting behaves as one started from a spec without the field."""
    return model.model_fields[field].default


class AgentSettings(config.ServiceSettings):
    """One agent: its role, instruments, and how it reaches the trader API and Redis."""

    agent_name: str = Field(default="local-agent", min_length=1, description="SAPPHIRE_AGENT_NAME.")
    role: str = Field(default="momentum", description="SAPPHIRE_ROLE: an analyst role or executor.")
    symbols: list[str] = Field(
        default_factory=list, description="SAPPHIRE_SYMBOLS; empty means all-market mode."
    )
    trader_api_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8000")
    redis_url: config.RedisUrl = Field(
        default=config.RedisUrl("redis://127.0.0.1:6379/0"),
        validation_alias=AliasChoices("SAPPHIRE_REDIS_URL", "REDIS_URL"),
    )
    redis_key_prefix: str = Field(default="sapphire:", description="SAPPHIRE_REDIS_KEY_PREFIX of channels.")
    agent_token: SecretStr = Field(default=SecretStr(""), description="Bearer token with scope agent.")
    interval_seconds: float = Field(
        default=_spec_default(tradingagent.TradingAgentSpec, "interval_seconds"),
        gt=0,
        description="Analysis cadence (analysts): spec.intervalSeconds.",
    )
    heartbeat_seconds: float = Field(default=10.0, gt=0, description="SAPPHIRE_HEARTBEAT_SECONDS.")
    instruments_refresh_seconds: float = Field(
        default=30.0, gt=0, description="How often all-market mode re-reads /v1/instruments."
    )
    backoff_max_seconds: float = Field(default=30.0, gt=0, description="Ceiling of the reconnect backoff.")
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="SAPPHIRE_METRICS_PORT: serve /metrics (LLM calls, latency, executor decisions), "
        "/healthz and /readyz (the loops' health, for the pod's probes) here; 0 serves none. The operator "
        "sets it in agent pods.",
    )
    health_failing_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A loop failing without a break for longer than this makes the agent unhealthy: it "
        "writes the reason to SAPPHIRE_TERMINATION_LOG and exits 1, to be restarted.",
    )
    termination_log: Path | None = Field(
        default=None,
        description="Where an unhealthy agent leaves its reason (the operator sets /dev/termination-log).",
    )

    model_provider: str = Field(default="", description="vertex, openai-compatible, or empty for none.")
    model_name: str = ""
    model_endpoint: str = Field(default="", description="Base URL override (OpenAI-compatible: .../v1).")
    model_api_key: SecretStr = Field(default=SecretStr("unused"))
    model_project: str = Field(default="", description="Vertex project (else GOOGLE_CLOUD_PROJECT / ADC).")
    model_location: str = Field(default="", description="Vertex location (else GOOGLE_CLOUD_LOCATION).")
    model_timeout_seconds: float = Field(
        default=_spec_default(tradingagent.ModelSpec, "timeout_seconds"), gt=0, description="spec.model."
    )
    model_max_calls_per_minute: int = Field(
        default=_spec_default(tradingagent.ModelSpec, "max_calls_per_minute"), ge=1, description="spec.model."
    )

    risk_max_order_notional: Decimal | None = Field(default=None, gt=0, description="Executor: spec.risk.")
    risk_max_position_notional: Decimal | None = Field(default=None, gt=0)
    risk_max_gross_exposure: Decimal | None = Field(default=None, gt=0)
    risk_max_daily_loss: Decimal | None = Field(default=None, gt=0)
    risk_stop_loss_bps: Decimal | None = Field(
        default=None, gt=0, lt=10_000, description="Executor: spec.risk.stopLossBps (a stop on every entry)."
    )
    risk_take_profit_bps: Decimal | None = Field(
        default=None, gt=0, lt=100_000, description="Executor: spec.risk.takeProfitBps."
    )
    risk_trailing_stop_bps: Decimal | None = Field(
        default=None, gt=0, lt=10_000, description="Executor: spec.risk.trailingStopBps (instead of a stop)."
    )
    executor_half_life_seconds: float = Field(default=120.0, gt=0, description="Signal decay half-life.")
    executor_collar_bps: Decimal = Field(default=Decimal(10), ge=0, description="Marketable-limit collar.")
    executor_decide_seconds: float = Field(default=1.0, gt=0, description="Re-decision cadence (decay).")
    arbitration_timeout_seconds: float = Field(default=2.0, gt=0, description="LLM arbitration deadline.")

    @property
    def model_label(self) -> str | None:
        """The model as ``provider/name`` (what the dashboard shows); ``None`` without one."""
        return f"{self.model_provider}/{self.model_name}" if self.model_provider else None

    @model_validator(mode="after")
    def _executor_needs_limits(self) -> AgentSettings:
        if self.role == "executor":
            missing = [
                name
                for name in (
                    "risk_max_order_notional",
                    "risk_max_position_notional",
                    "risk_max_gross_exposure",
                    "risk_max_daily_loss",
                )
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(
                    "the executor needs every risk limit; missing "
                    + ", ".join(f"SAPPHIRE_{m.upper()}" for m in missing)
                )
        if self.risk_stop_loss_bps is not None and self.risk_trailing_stop_bps is not None:
            raise ValueError(
                "SAPPHIRE_RISK_STOP_LOSS_BPS and SAPPHIRE_RISK_TRAILING_STOP_BPS are exclusive: "
                "a position has one stop, fixed or trailing"
            )
        return self

    @property
    def model_api_key_value(self) -> str:
        """The key, or empty when it holds the ``unused`` placeholder of keyless providers."""
        key = self.model_api_key.get_secret_value()
        return "" if key == "unused" else key


def spec_settings(*, name: str, spec: tradingagent.TradingAgentSpec) -> dict[str, Any]:
    """The :class:`AgentSettings` fields a TradingAgent's spec sets, by field name.

    The one translation from spec to settings: the operator turns it into the Deployment's
    ``SAPPHIRE_*`` environment (:func:`env_value`), ``sapphire up`` into the settings of its
    in-process agents, so one YAML runs the same way in both. Secrets are only referenced by
    a spec (``model.apiKeySecretRef``), so they are the builder's to wire, not here."""
    fields: dict[str, Any] = {
        "agent_name": name,
        "role": spec.role.value,
        "symbols": list(spec.symbols),
        "interval_seconds": spec.interval_seconds,
    }
    model = spec.model
    if model is not None:
        fields |= {
            "model_provider": model.provider.value,
            "model_name": model.name,
            "model_timeout_seconds": model.timeout_seconds,
            "model_max_calls_per_minute": model.max_calls_per_minute,
        }
        optional = {
            "model_endpoint": model.endpoint,
            "model_project": model.project,
            "model_location": model.location,
        }
        fields |= {key: value for key, value in optional.items() if value}
    if spec.risk is not None:
        fields |= {
            "risk_max_order_notional": spec.risk.max_order_notional,
            "risk_max_position_notional": spec.risk.max_position_notional,
            "risk_max_gross_exposure": spec.risk.max_gross_exposure,
            "risk_max_daily_loss": spec.risk.max_daily_loss,
        }
        protective = {
            "risk_stop_loss_bps": spec.risk.stop_loss_bps,
            "risk_take_profit_bps": spec.risk.take_profit_bps,
            "risk_trailing_stop_bps": spec.risk.trailing_stop_bps,
        }
        fields |= {key: value for key, value in protective.items() if value is not None}
    return fields


def env_name(field: str) -> str:
    """The environment variable of an :class:`AgentSettings` field."""
    return f"SAPPHIRE_{field.upper()}"


def env_value(value: Any) -> str:
    """A setting as its environment variable holds it (lists as JSON, as pydantic-settings reads them)."""
    return json.dumps(value) if isinstance(value, list) else str(value)
