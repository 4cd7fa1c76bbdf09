"""BacktestRun: one backtest of a set of agents over one history, declared as a Kubernetes resource.

The operator runs ``sapphire backtest`` in a bare Pod, the way it runs a MigrationRun, and
writes the headline results into status. The agents are TradingAgents of the namespace
(``tradingAgentRef``, their spec as it is when the run starts) or specs written inline; the
history is fetched from a URL by the pod. The full report (JSON and HTML) goes to a
PersistentVolumeClaim when one is named. The object stays afterwards as the record of what
ran, so its spec is immutable.
"""

from __future__ import annotations

import datetime
import decimal
import enum
from typing import Annotated, Literal, Self

import pydantic

import sapphire
from sapphire.resources import common, tradingagent

KIND = "BacktestRun"
PLURAL = "backtestruns"
SINGULAR = "backtestrun"
SHORT_NAMES = ("bt",)
API_VERSION = f"{sapphire.GROUP}/{common.VERSION}"

BACKTEST_CONTAINER = "backtest"
"""Name of the container that runs ``sapphire backtest``."""

MAX_AGENTS = 16
DATA_URL_PATTERN = r"^https?://\S+$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"


class BacktestAgent(common.SpecModel):
    """One agent of the backtest: a TradingAgent of this namespace, or a spec written here."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.cel_rules(
            common.cel_rule(
                "has(self.tradingAgentRef) != has(self.spec)",
                "exactly one of tradingAgentRef and spec must be given",
                field_path=".tradingAgentRef",
                reason="FieldValueInvalid",
            )
        )
    )

    name: Annotated[str, pydantic.Field(min_length=1, max_length=63, pattern=common.DNS_LABEL_PATTERN)]
    """The agent's name in the backtest and its report (per-agent tables)."""

    trading_agent_ref: (
        Annotated[str, pydantic.Field(min_length=1, max_length=63, pattern=common.DNS_LABEL_PATTERN)] | None
    ) = None
    """Name of a TradingAgent in this namespace whose spec is replayed, as it is when the run
    starts. A paused TradingAgent is backtested too."""

    spec: tradingagent.TradingAgentSpec | None = None
    """A TradingAgent spec written inline, for an agent that does not run in the cluster."""

    @pydantic.model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.trading_agent_ref is None) == (self.spec is None):
            raise ValueError("exactly one of tradingAgentRef and spec must be given")
        return self


class BacktestData(common.SpecModel):
    """Where the history comes from. The pod downloads it once, before the replay."""

    url: Annotated[str, pydantic.Field(max_length=2048, pattern=DATA_URL_PATTERN)]
    """http(s) URL of a CSV (ticks or OHLCV bars) or Parquet file, as ``sapphire backtest --data``
    reads it; the format comes from the path's suffix (.csv or .parquet)."""

    sha256: Annotated[str, pydantic.Field(pattern=SHA256_PATTERN)] | None = None
    """Expected SHA-256 of the file (lowercase hex). When given, other bytes fail the run, so a
    record of a backtest names exactly the history it replayed."""


class BacktestRunSpec(common.SpecModel):
    """Desired backtest: which agents, over which history and period. Immutable."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.cel_rules(
            common.cel_rule(
                "!has(self.start) || !has(self.end) || self.start < self.end",
                "start must be before end",
                field_path=".end",
                reason="FieldValueInvalid",
            ),
            common.cel_rule(
                "self == oldSelf",
                "spec is immutable: a BacktestRun records one backtest; create a new BacktestRun",
                reason="FieldValueForbidden",
            ),
        )
    )

    agents: Annotated[
        list[BacktestAgent],
        pydantic.Field(
            min_length=1,
            max_length=MAX_AGENTS,
            json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        ),
    ]
    """The agents replayed together, as ``sapphire backtest -f`` would read them: analysts and
    usually one executor (without one, signals are recorded but nothing trades)."""

    data: BacktestData
    """The history to replay."""

    start: datetime.datetime | None = None
    """Replay from this time (RFC 3339), inclusive; default: the first quote."""

    end: datetime.datetime | None = None
    """Replay up to this time (RFC 3339), exclusive; default: after the last quote."""

    timeframe_seconds: Annotated[pydantic.StrictInt, pydantic.Field(ge=1, le=86400)] = 60
    """Length of one bar in seconds, for bar data."""

    spread_bps: common.DecimalString = pydantic.Field(default=decimal.Decimal(2))
    """Bid/ask spread put around bar prices, in basis points (a decimal string)."""

    sample_seconds: Annotated[pydantic.StrictInt, pydantic.Field(ge=1, le=86400)] = 60
    """How often equity is sampled for the metrics, in simulated seconds."""

    report_claim_name: (
        Annotated[str, pydantic.Field(min_length=1, max_length=253, pattern=common.DNS_LABEL_PATTERN)] | None
    ) = None
    """PersistentVolumeClaim the pod writes report.json and report.html to, under a directory
    named after this BacktestRun. Without it only the headline figures in status are kept."""

    image: common.Image | None = None
    """Image holding Sapphire; defaults to the operator's Sapphire image."""

    active_deadline_seconds: common.DeadlineSeconds = 3600
    """Deadline of the backtest pod, in seconds; the run fails after it."""

    ttl_seconds_after_finished: common.TtlSeconds = 300
    """Seconds the finished pod is kept so its logs can be read; the BacktestRun stays as the record."""

    @pydantic.field_validator("agents")
    @classmethod
    def _unique_agents(cls, agents: list[BacktestAgent]) -> list[BacktestAgent]:
        common.unique_names([agent.name for agent in agents], "agent names")
        return agents

    @pydantic.model_validator(mode="after")
    def _period(self) -> Self:
        # Mirrors the CEL rule above (immutability needs the old object: API server only).
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        return self


class BacktestRunPhase(enum.StrEnum):
    """Where the run is in its life cycle. Succeeded and Failed are final."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def is_final(self) -> bool:
        """True once the run has a result and will never run again."""
        return self in common.FINAL_RUN_PHASES


BacktestRunConditionType = common.RunConditionType


Ratio = Annotated[str, pydantic.Field(max_length=40, pattern=common.SIGNED_DECIMAL_PATTERN)]


class BacktestRunStatus(common.RunStatus):
    """Observed state of the run and its headline results, written by the operator."""

    phase: BacktestRunPhase | None = None
    """Pending (waiting for a referenced TradingAgent), Running, Succeeded or Failed."""

    total_return: Ratio | None = None
    """Total return over the period, as a fraction (0.0123 is +1.23 %)."""

    sharpe: Ratio | None = None
    """Annualised Sharpe ratio of the sampled equity; absent when undefined (no variance)."""

    max_drawdown: Ratio | None = None
    """Depth of the maximum drawdown, as a fraction of the peak equity."""

    trades: common.Count | None = None
    """Closed round trips."""

    fees: common.DecimalString | None = None
    """Fees paid to the paper venue, in the quote currency."""

    final_equity: common.SignedDecimalString | None = None
    """Equity at the end of the replay, in the quote currency."""

    quotes: common.Count | None = None
    """Quotes replayed."""

    data_sha256: Annotated[str, pydantic.Field(pattern=SHA256_PATTERN)] | None = None
    """SHA-256 of the history replayed, as the report records it."""

    report: Annotated[str, pydantic.Field(max_length=600)] | None = None
    """Where the full report is: persistentVolumeClaim/<claim>/<run>/report.json (and report.html)."""

    agents: Annotated[
        list[Annotated[str, pydantic.Field(max_length=63)]],
        pydantic.Field(max_length=MAX_AGENTS, json_schema_extra={"x-kubernetes-list-type": "atomic"}),
    ] = pydantic.Field(default_factory=list)
    """The agents replayed; a referenced TradingAgent's spec is read when the run starts."""

    message: common.StatusMessage | None = None
    """What the run is doing, its headline result, or why it failed."""


class BacktestRun(common.Document):
    """A whole BacktestRun document, as read from a YAML file."""

    kind: Literal["BacktestRun"]
    spec: BacktestRunSpec
    status: BacktestRunStatus | None = None
