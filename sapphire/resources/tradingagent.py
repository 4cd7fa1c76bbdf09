"""TradingAgent: one analyst or the executor, declared as a Kubernetes resource.

The operator turns each TradingAgent into a one-replica Deployment; ``sapphire up`` runs the
same spec as a local process. Both read it through :class:`TradingAgentSpec`, and the CRD's
schema is generated from these classes, so Python and the API server accept the same objects.
Every cross-field rule is written twice, side by side: as a CEL rule for the API server and
as a pydantic validator for Python. The unit tests hold the two to the same corpus.
"""

from __future__ import annotations

import datetime
import decimal
import enum
from typing import Annotated, Any, Literal, Self

import pydantic

import sapphire
from sapphire.domain.symbols import SYMBOL_PATTERN
from sapphire.resources import common

KIND = "TradingAgent"
PLURAL = "tradingagents"
SINGULAR = "tradingagent"
SHORT_NAMES = ("ta",)
API_VERSION = f"{sapphire.GROUP}/{common.VERSION}"

REVISION_ID_PATTERN = r"^[A-Za-z0-9_]{1,64}$"
"""An alembic revision id (``head`` and ``base`` are not concrete revisions)."""

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
"""Kubernetes' resource.Quantity syntax (``250m``, ``512Mi``, ``1``)."""

ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
"""What Kubernetes accepts as an environment variable name."""

RESERVED_ENV_PREFIX = "SAPPHIRE_"
"""The operator configures the agent through these variables; users must not shadow them."""

SYMBOLS_SUMMARY_ALL = "ALL"
"""``status.symbolsSummary`` of an agent in all-market mode."""

SYMBOLS_SUMMARY_SHOWN = 3
"""How many symbols ``status.symbolsSummary`` names before it abbreviates (``+N``)."""


class Role(enum.StrEnum):
    """What the agent does: one of six analysts, or the executor that places orders."""

    MOMENTUM = "momentum"
    MEAN_REVERSION = "mean-reversion"
    VOLATILITY = "volatility"
    MICROSTRUCTURE = "microstructure"
    SENTIMENT = "sentiment"
    STRATEGIST = "strategist"
    EXECUTOR = "executor"


class ModelProvider(enum.StrEnum):
    """Which family of LLM API the agent calls."""

    VERTEX = "vertex"
    OPENAI_COMPATIBLE = "openai-compatible"


Symbol = Annotated[str, pydantic.Field(max_length=25, pattern=SYMBOL_PATTERN)]
RevisionId = Annotated[str, pydantic.Field(pattern=REVISION_ID_PATTERN)]
Quantity = Annotated[
    str,
    pydantic.BeforeValidator(lambda value: str(value) if isinstance(value, int) else value),
    pydantic.Field(pattern=QUANTITY_PATTERN),
    pydantic.WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]


class ModelSpec(common.SpecModel):
    """The LLM the agent consults. Leave it out for deterministic analysis with no LLM."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.cel_rules(
            common.cel_rule(
                "self.provider != 'openai-compatible' || has(self.endpoint)",
                "endpoint is required when provider is openai-compatible",
                field_path=".endpoint",
                reason="FieldValueRequired",
            ),
            common.cel_rule(
                "self.provider != 'vertex' || !has(self.endpoint)",
                "endpoint is only for openai-compatible providers; vertex derives it from location",
                field_path=".endpoint",
                reason="FieldValueForbidden",
            ),
            common.cel_rule(
                "self.provider != 'vertex' || !has(self.apiKeySecretRef)",
                "apiKeySecretRef is only for openai-compatible providers; vertex authenticates "
                "as the pod's Google service account",
                field_path=".apiKeySecretRef",
                reason="FieldValueForbidden",
            ),
            common.cel_rule(
                "self.provider == 'vertex' || (!has(self.project) && !has(self.location))",
                "project and location are only for provider vertex",
                field_path=".provider",
                reason="FieldValueInvalid",
            ),
        )
    )

    provider: ModelProvider
    """LLM API family: vertex (Google Vertex AI Gemini) or openai-compatible (xAI Grok, vLLM, Ollama...)."""

    name: Annotated[
        str, pydantic.Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][-A-Za-z0-9._:/@]*$")
    ]
    """Model name as the provider knows it, for example gemini-2.5-flash or grok-4."""

    endpoint: Annotated[str, pydantic.Field(max_length=2048, pattern=r"^https?://[^\s]+$")] | None = None
    """Base URL of an OpenAI-compatible API, for example https://api.x.ai/v1.
    Required for openai-compatible."""

    api_key_secret_ref: common.SecretKeyRef | None = None
    """Secret key holding the API key sent as a bearer token (openai-compatible only)."""

    project: Annotated[str, pydantic.Field(pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")] | None = None
    """Google Cloud project for Vertex AI; defaults to the project of the pod's credentials."""

    location: Annotated[str, pydantic.Field(max_length=64, pattern=r"^[a-z]+(-[a-z0-9]+)*$")] | None = None
    """Vertex AI region, for example us-central1 or global; defaults to the operator's setting."""

    timeout_seconds: Annotated[pydantic.StrictInt, pydantic.Field(ge=1, le=300)] = 30
    """Deadline of one LLM call; on timeout the agent abstains instead of guessing."""

    max_calls_per_minute: Annotated[pydantic.StrictInt, pydantic.Field(ge=1, le=1000)] = 30
    """Rate limit of this agent's LLM calls, to bound cost and respect provider quotas."""

    @pydantic.model_validator(mode="after")
    def _provider_fields(self) -> Self:
        # Mirrors the CEL rules above.
        if self.provider is ModelProvider.OPENAI_COMPATIBLE:
            if self.endpoint is None:
                raise ValueError("endpoint is required when provider is openai-compatible")
            if self.project is not None or self.location is not None:
                raise ValueError("project and location are only for provider vertex")
        else:
            if self.endpoint is not None:
                raise ValueError("endpoint is only for openai-compatible providers")
            if self.api_key_secret_ref is not None:
                raise ValueError("apiKeySecretRef is only for openai-compatible providers")
        return self


def _positive(name: str) -> dict[str, str]:
    return common.cel_rule(
        f"double(self.{name}) > 0.0",
        f"{name} must be greater than zero",
        field_path=f".{name}",
        reason="FieldValueInvalid",
    )


PROTECTIVE_BPS_BOUNDS: dict[str, decimal.Decimal] = {
    "stopLossBps": decimal.Decimal(10_000),
    "trailingStopBps": decimal.Decimal(10_000),
    "takeProfitBps": decimal.Decimal(100_000),
}
"""Exclusive upper bound of each protective distance: a stop 10,000 bps (100%) below a long
entry is a stop at zero; a take-profit may be up to 1,000% away."""


def _bps_in_bounds(name: str) -> dict[str, str]:
    bound = PROTECTIVE_BPS_BOUNDS[name]
    return common.cel_rule(
        f"!has(self.{name}) || (double(self.{name}) > 0.0 && double(self.{name}) < {bound}.0)",
        f"{name} must be greater than zero and less than {bound}",
        field_path=f".{name}",
        reason="FieldValueInvalid",
    )


class RiskLimits(common.SpecModel):
    """Pre-trade limits of the executor, in the account currency, as decimal strings."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.cel_rules(
            _positive("maxOrderNotional"),
            _positive("maxPositionNotional"),
            _positive("maxGrossExposure"),
            _positive("maxDailyLoss"),
            common.cel_rule(
                "double(self.maxOrderNotional) <= double(self.maxPositionNotional)",
                "maxOrderNotional must not exceed maxPositionNotional",
                field_path=".maxOrderNotional",
                reason="FieldValueInvalid",
            ),
            common.cel_rule(
                "double(self.maxPositionNotional) <= double(self.maxGrossExposure)",
                "maxPositionNotional must not exceed maxGrossExposure",
                field_path=".maxPositionNotional",
                reason="FieldValueInvalid",
            ),
            *(_bps_in_bounds(name) for name in PROTECTIVE_BPS_BOUNDS),
            common.cel_rule(
                "!has(self.stopLossBps) || !has(self.trailingStopBps)",
                "stopLossBps and trailingStopBps are exclusive: a position has one stop, fixed or trailing",
                field_path=".trailingStopBps",
                reason="FieldValueForbidden",
            ),
        )
    )

    max_order_notional: common.DecimalString
    """Largest notional (quantity x price) of a single order, for example "1000"."""

    max_position_notional: common.DecimalString
    """Largest absolute notional held in any one symbol after a fill."""

    max_gross_exposure: common.DecimalString
    """Largest sum of absolute position notionals across all symbols."""

    max_daily_loss: common.DecimalString
    """Loss since the start of the UTC day at which the executor stops opening positions."""

    stop_loss_bps: common.DecimalString | None = None
    """Attach a stop to every entry, this many basis points (1/100 of a percent) beyond the
    entry's average fill price against the position (below a long, above a short), rounded
    to the tick toward the entry. With takeProfitBps the two form one OCO group: when one
    fills the trader API cancels the other. Greater than 0, less than 10000; exclusive with
    trailingStopBps. Absent: no fixed stop."""

    take_profit_bps: common.DecimalString | None = None
    """Attach a take-profit to every entry, this many basis points beyond the entry's average
    fill price in the position's favour, rounded to the tick away from the entry. Greater
    than 0, less than 100000. Absent: no take-profit."""

    trailing_stop_bps: common.DecimalString | None = None
    """Attach a trailing stop to every entry instead of a fixed one: its stop follows the best
    touch (the bid for a long, the ask for a short) at this many basis points and only moves
    in the position's favour. Greater than 0, less than 10000; exclusive with stopLossBps.
    Absent: no trailing stop."""

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> Self:
        for alias, value in (
            ("maxOrderNotional", self.max_order_notional),
            ("maxPositionNotional", self.max_position_notional),
            ("maxGrossExposure", self.max_gross_exposure),
            ("maxDailyLoss", self.max_daily_loss),
        ):
            if value <= 0:
                raise ValueError(f"{alias} must be greater than zero")
        if self.max_order_notional > self.max_position_notional:
            raise ValueError("maxOrderNotional must not exceed maxPositionNotional")
        if self.max_position_notional > self.max_gross_exposure:
            raise ValueError("maxPositionNotional must not exceed maxGrossExposure")
        for alias, bps in (
            ("stopLossBps", self.stop_loss_bps),
            ("trailingStopBps", self.trailing_stop_bps),
            ("takeProfitBps", self.take_profit_bps),
        ):
            bound = PROTECTIVE_BPS_BOUNDS[alias]
            if bps is not None and not 0 < bps < bound:
                raise ValueError(f"{alias} must be greater than zero and less than {bound}")
        if self.stop_loss_bps is not None and self.trailing_stop_bps is not None:
            raise ValueError(
                "stopLossBps and trailingStopBps are exclusive: a position has one stop, fixed or trailing"
            )
        return self


class ResourceList(common.SpecModel):
    """Amounts of compute resources, in Kubernetes quantity syntax."""

    cpu: Quantity | None = None
    """CPU, for example 100m or 1."""

    memory: Quantity | None = None
    """Memory, for example 256Mi."""


class Resources(common.SpecModel):
    """Compute resources of the agent container; overrides the operator's defaults."""

    requests: ResourceList | None = None
    """Resources the scheduler reserves for the agent."""

    limits: ResourceList | None = None
    """Most the agent may use; exceeding memory kills the container."""


class EnvVar(common.SpecModel):
    """An extra environment variable for the agent container."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.cel_rules(
            common.cel_rule(
                "!(has(self.value) && has(self.valueFrom))",
                "set value or valueFrom, not both",
                field_path=".valueFrom",
                reason="FieldValueForbidden",
            ),
            common.cel_rule(
                f"!self.name.startsWith('{RESERVED_ENV_PREFIX}')",
                f"names starting with {RESERVED_ENV_PREFIX} are reserved: "
                "the operator sets them from the spec",
                field_path=".name",
                reason="FieldValueForbidden",
            ),
        )
    )

    name: Annotated[str, pydantic.Field(min_length=1, max_length=256, pattern=ENV_NAME_PATTERN)]
    """Variable name; must not start with SAPPHIRE_."""

    value: str | None = None
    """Literal value."""

    value_from: Annotated[
        dict[str, Any] | None,
        pydantic.Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}),
    ] = None
    """Source of the value, as in a Pod's env[].valueFrom (secretKeyRef, configMapKeyRef, fieldRef)."""

    @pydantic.model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.value is not None and self.value_from is not None:
            raise ValueError("set value or valueFrom, not both")
        if self.name.startswith(RESERVED_ENV_PREFIX):
            raise ValueError(f"names starting with {RESERVED_ENV_PREFIX} are reserved")
        return self


class PodTemplateMetadata(common.SpecModel):
    """Labels and annotations added to the agent's pods."""

    labels: dict[str, Annotated[str, pydantic.Field(max_length=63)]] = pydantic.Field(default_factory=dict)
    """Extra pod labels; the operator's own labels win on conflict."""

    annotations: dict[str, str] = pydantic.Field(default_factory=dict)
    """Extra pod annotations, for example for a metrics scraper."""


class PodTemplate(common.SpecModel):
    """Overrides merged over the pod the operator builds, in PodTemplateSpec shape."""

    metadata: PodTemplateMetadata | None = None
    """Labels and annotations for the agent's pods."""

    spec: Annotated[
        dict[str, Any] | None,
        pydantic.Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}),
    ] = None
    """PodSpec fields merged over the operator's pod spec: nodeSelector, tolerations, affinity,
    serviceAccountName, priorityClassName... The operator keeps its own containers and security
    context; the API server validates the merged Pod when the Deployment is created."""


class TradingAgentSpec(common.SpecModel):
    """Desired state of one trading agent: an analyst that publishes signals, or the executor."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.cel_rules(
            common.cel_rule(
                "self.role != 'executor' || has(self.risk)",
                "risk is required when role is executor",
                field_path=".risk",
                reason="FieldValueRequired",
            ),
            common.cel_rule(
                "self.role == 'executor' || !has(self.risk)",
                "risk is only allowed when role is executor: analysts place no orders",
                field_path=".risk",
                reason="FieldValueForbidden",
            ),
        )
    )

    role: Annotated[
        Role,
        pydantic.Field(
            json_schema_extra=common.cel_rules(
                common.cel_rule(
                    "self == oldSelf",
                    "role is immutable: delete the agent and create a new one",
                    reason="FieldValueForbidden",
                )
            )
        ),
    ]
    """What the agent does: momentum, mean-reversion, volatility, microstructure, sentiment,
    strategist (the six analysts), or executor (aggregates signals and places orders). Immutable."""

    symbols: Annotated[
        list[Symbol],
        pydantic.Field(max_length=500, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = pydantic.Field(default_factory=list)
    """Instruments to trade or analyse, such as BTC-USD. Empty or absent means all-market mode:
    every symbol the trader API lists."""

    interval_seconds: Annotated[pydantic.StrictInt, pydantic.Field(ge=5, le=86400)] = 60
    """Seconds between two analyses, from 5 to 86400. Analysts only; the executor reacts to signals."""

    model: ModelSpec | None = None
    """LLM the agent consults. Absent means deterministic analysis with no LLM."""

    risk: RiskLimits | None = None
    """Pre-trade risk limits. Required for the executor and forbidden for analysts."""

    requires_schema: RevisionId | None = None
    """Alembic revision the agent needs. The agent waits in phase WaitingForSchema until a
    MigrationRun has brought the database there."""

    paused: pydantic.StrictBool = False
    """Scale the agent to zero without deleting it."""

    image: common.Image | None = None
    """Container image; defaults to the operator's Sapphire image."""

    resources: Resources | None = None
    """CPU and memory of the agent container; defaults to the operator's."""

    env: Annotated[
        list[EnvVar],
        pydantic.Field(
            max_length=64,
            json_schema_extra=common.keyed_list("name"),
        ),
    ] = pydantic.Field(default_factory=list)
    """Extra environment variables for the agent container."""

    pod_template: PodTemplate | None = None
    """Overrides of the agent's pod: labels, annotations and PodSpec fields such as nodeSelector."""

    @pydantic.field_validator("symbols")
    @classmethod
    def _unique_symbols(cls, symbols: list[str]) -> list[str]:
        common.unique_names(symbols, "symbols")
        return symbols

    @pydantic.field_validator("env")
    @classmethod
    def _unique_env(cls, env: list[EnvVar]) -> list[EnvVar]:
        common.unique_names([variable.name for variable in env], "env names")
        return env

    @pydantic.model_validator(mode="after")
    def _risk_iff_executor(self) -> Self:
        # Mirrors the CEL rules above.
        if self.role is Role.EXECUTOR and self.risk is None:
            raise ValueError("risk is required when role is executor")
        if self.role is not Role.EXECUTOR and self.risk is not None:
            raise ValueError("risk is only allowed when role is executor: analysts place no orders")
        return self

    @property
    def is_all_market(self) -> bool:
        """True when the agent covers every symbol the trader API lists."""
        return not self.symbols

    @property
    def is_executor(self) -> bool:
        """True for the agent that places orders (one Deployment strategy: Recreate)."""
        return self.role is Role.EXECUTOR

    def symbols_summary(self) -> str:
        """What the SYMBOLS column shows; the operator writes it to ``status.symbolsSummary``."""
        return summarize_symbols(self.symbols)


def summarize_symbols(symbols: list[str]) -> str:
    """``ALL`` in all-market mode, otherwise the first few symbols and how many more.

    A printer column's JSONPath cannot turn an empty list into ``ALL``, hence this string in
    status, for example ``BTC-USD,ETH-USD,SOL-USD,+2``.
    """
    if not symbols:
        return SYMBOLS_SUMMARY_ALL
    shown = ",".join(symbols[:SYMBOLS_SUMMARY_SHOWN])
    hidden = len(symbols) - SYMBOLS_SUMMARY_SHOWN
    return f"{shown},+{hidden}" if hidden > 0 else shown


class TradingAgentPhase(enum.StrEnum):
    """Where the agent is in its life cycle."""

    PENDING = "Pending"
    WAITING_FOR_SCHEMA = "WaitingForSchema"
    STARTING = "Starting"
    RUNNING = "Running"
    PAUSED = "Paused"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    INVALID_SPEC = "InvalidSpec"
    """The API server admitted the spec but this operator cannot use it (see the InvalidSpec
    condition); nothing is retried until the spec changes."""


class TradingAgentConditionType(enum.StrEnum):
    """The condition types the operator maintains on a TradingAgent."""

    READY = "Ready"
    PROGRESSING = "Progressing"
    SCHEMA_READY = "SchemaReady"
    INVALID_SPEC = "InvalidSpec"


class TradingAgentStatus(common.StatusModel):
    """Observed state of the agent, written by the operator."""

    phase: TradingAgentPhase | None = None
    """Pending, WaitingForSchema, Starting, Running, Paused, Degraded, Failed or InvalidSpec."""

    conditions: common.Conditions = pydantic.Field(default_factory=list)
    """Ready, Progressing, SchemaReady and, while the spec cannot be used, InvalidSpec (naming the
    fields), in metav1.Condition shape."""

    ready_replicas: common.Count | None = None
    """Ready pods of the agent's Deployment (0 or 1)."""

    deployment: str | None = None
    """Name of the Deployment that runs the agent."""

    symbols_summary: Annotated[str, pydantic.Field(max_length=256)] | None = None
    """What the SYMBOLS column shows: ALL in all-market mode, otherwise the symbols, abbreviated.
    Kept in status because a printer column's JSONPath cannot compute it."""

    last_signal_at: datetime.datetime | None = None
    """When the agent last published a signal (analysts) or placed an order (executor)."""

    signals_last_hour: common.Count | None = None
    """Signals the agent published (or, for the executor, consumed) in the last hour."""

    orders_last_hour: common.Count | None = None
    """Orders the executor submitted in the last hour."""

    realized_pnl: common.SignedDecimalString | None = None
    """Realized profit and loss since the start of the UTC day, as a decimal string (executor)."""

    unrealized_pnl: common.SignedDecimalString | None = None
    """Mark-to-market profit and loss of open positions, as a decimal string (executor)."""

    gross_exposure: common.DecimalString | None = None
    """Sum of absolute position notionals, as a decimal string (executor)."""

    figures_updated_at: datetime.datetime | None = None
    """When the trading figures above were read from the trader API."""


class TradingAgent(common.Document):
    """A whole TradingAgent document, as ``sapphire up`` reads it from a YAML file."""

    kind: Literal["TradingAgent"]
    spec: TradingAgentSpec
    status: TradingAgentStatus | None = None
