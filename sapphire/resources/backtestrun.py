"""BacktestRun: one backtest of a set of agents over one history, declared as a Kubernetes resource.

The operator runs ``sapphire backtest`` in a bare Pod, the way it runs a MigrationRun, and
writes the headline results into status. The agents are TradingAgents of the namespace
(``tradingAgentRef``, their spec as it is when the run starts) or specs written inline; the
history is fetched from a URL by the pod. The full report (JSON and HTML) goes to a
PersistentVolumeClaim when one is named. The object stays afterwards as the record of what
ran, so its spec is immutable.

``parallelism`` splits the period into slices, one pod each; or, with a ``grid`` of agent
parameters, it is how many of the grid's trials (one pod each) run at once.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import itertools
import math
import re
from typing import Annotated, Literal, NamedTuple, Self

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
MAX_PARALLELISM = 32
"""At most this many slices (pods) per run."""
MAX_TRIALS = MAX_PARALLELISM
"""At most this many trials (pods) in a grid: the product of its axes' numbers of values."""
MAX_GRID_AXES = 4
"""At most this many axes in a grid (a CEL rule multiplies their sizes one by one)."""
TRIAL_FOLDER_PREFIX = "trial-"
"""A grid's trial ``k`` writes its report under ``<run>/trial-<k>/`` on the report claim (a
name apart from a slice's ``<run>/<n>/``: nothing reads a trial as a slice of one period)."""
WHOLE_SECONDS_PATTERN = r"^[0-9]{1,5}$"
"""A grid value for intervalSeconds: whole seconds, as a string (the field bounds it to 86400)."""
DATA_URL_PATTERN = r"^https?://\S+$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"


def trial_folder(trial: int) -> str:
    return f"{TRIAL_FOLDER_PREFIX}{trial}"


def trial_of_folder(name: str) -> int | None:
    """The trial whose report folder ``name`` is, or None."""
    digits = name.removeprefix(TRIAL_FOLDER_PREFIX)
    if digits == name or not (digits.isascii() and digits.isdigit()) or digits.startswith("0"):
        return None
    trial = int(digits)
    return trial if 1 <= trial <= MAX_TRIALS else None


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


class GridParameter(enum.StrEnum):
    """The TradingAgent spec fields a grid may sweep: those the replay reads and that change
    what a backtest does (an analyst's cadence, the executor's risk limits)."""

    INTERVAL_SECONDS = "intervalSeconds"
    RISK_MAX_ORDER_NOTIONAL = "risk.maxOrderNotional"
    RISK_MAX_POSITION_NOTIONAL = "risk.maxPositionNotional"
    RISK_MAX_GROSS_EXPOSURE = "risk.maxGrossExposure"
    RISK_MAX_DAILY_LOSS = "risk.maxDailyLoss"
    RISK_STOP_LOSS_BPS = "risk.stopLossBps"
    RISK_TAKE_PROFIT_BPS = "risk.takeProfitBps"
    RISK_TRAILING_STOP_BPS = "risk.trailingStopBps"

    @property
    def path(self) -> tuple[str, ...]:
        """Where the field is in a TradingAgent spec's wire form: ``("risk", "stopLossBps")``."""
        return tuple(self.value.split("."))

    @property
    def is_risk(self) -> bool:
        """True for the executor's risk limits; False for an analyst's ``intervalSeconds``."""
        return self is not GridParameter.INTERVAL_SECONDS

    def wire_value(self, value: str) -> int | str:
        """``value`` as the field's wire form has it: intervalSeconds is an integer, a risk
        limit a decimal string."""
        return value if self.is_risk else int(value)


GridValue = Annotated[str, pydantic.Field(min_length=1, max_length=32)]

VALUE_SYNTAX = {
    False: (
        WHOLE_SECONDS_PATTERN,
        'values of intervalSeconds must be whole seconds written as strings, for example "30"',
    ),
    True: (
        common.DECIMAL_PATTERN,
        'values of a risk limit must be decimal strings, for example "2500" or "0.25"',
    ),
}
"""The pattern a grid value matches and the message when it does not, by ``is_risk``. The
field's own bounds (intervalSeconds 5 to 86400, a stop below 10000 bps...) are checked when a
trial's spec is built."""


def _values_rule(is_risk: bool) -> dict[str, str]:
    pattern, message = VALUE_SYNTAX[is_risk]
    applies = f"self.parameter {'!=' if is_risk else '=='} '{GridParameter.INTERVAL_SECONDS.value}'"
    return common.cel_rule(
        f"!({applies}) || self.values.all(v, v.matches(r'{pattern}'))",
        message,
        field_path=".values",
        reason="FieldValueInvalid",
    )


class GridAxis(common.SpecModel):
    """One axis of a parameter grid: the values one field of one agent's spec takes."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.cel_rules(_values_rule(False), _values_rule(True))
    )

    agent: Annotated[str, pydantic.Field(min_length=1, max_length=63, pattern=common.DNS_LABEL_PATTERN)]
    """The name of the agent (in agents) whose spec the axis changes: written inline or a
    tradingAgentRef (then its spec as read when the run starts)."""

    parameter: GridParameter
    """The field swept: intervalSeconds (an analyst's), or one of the executor's risk limits
    risk.maxOrderNotional, risk.maxPositionNotional, risk.maxGrossExposure, risk.maxDailyLoss,
    risk.stopLossBps, risk.takeProfitBps, risk.trailingStopBps."""

    values: Annotated[
        list[GridValue],
        pydantic.Field(
            min_length=1, max_length=MAX_TRIALS, json_schema_extra={"x-kubernetes-list-type": "set"}
        ),
    ]
    """The values the field takes, as strings (quote them in YAML): whole seconds for
    intervalSeconds, decimal strings for the risk limits. Each trial's spec is validated as a
    TradingAgent spec when the run starts; a value the field refuses fails the run, naming
    the axis."""

    @pydantic.model_validator(mode="after")
    def _values(self) -> Self:
        # Mirrors the CEL rules above and the list's set type (unique values).
        common.unique_names(self.values, f"values of {self.parameter.value}")
        pattern = common.DECIMAL_PATTERN if self.parameter.is_risk else WHOLE_SECONDS_PATTERN
        wrong = [value for value in self.values if re.fullmatch(pattern.strip("^$"), value) is None]
        if wrong and self.parameter.is_risk:
            raise ValueError('values of a risk limit must be decimal strings, for example "2500" or "0.25"')
        if wrong:
            raise ValueError(
                'values of intervalSeconds must be whole seconds written as strings, for example "30"'
            )
        return self


class TrialSetting(NamedTuple):
    """One field of one agent's spec, as a trial sets it."""

    agent: str
    parameter: GridParameter
    value: str

    def label(self) -> str:
        """``executor.risk.stopLossBps=50``: how messages name it."""
        return f"{self.agent}.{self.parameter.value}={self.value}"


class Trial(NamedTuple):
    """One point of a grid: an independent backtest of the whole period with these settings."""

    number: int
    """1 to the number of trials, in the order of :meth:`BacktestRunSpec.trials`."""
    settings: tuple[TrialSetting, ...]
    """One per axis, in the grid's order."""

    def label(self) -> str:
        return ", ".join(setting.label() for setting in self.settings)


class BacktestObjective(enum.StrEnum):
    """What the best trial of a grid has the most of."""

    TOTAL_RETURN = "totalReturn"
    SHARPE = "sharpe"


def _trial_count_rule() -> str:
    # CEL has no product over a list: the sizes of the (at most MAX_GRID_AXES) axes one by one.
    sizes = " * ".join(
        f"(size(self.grid) > {index} ? size(self.grid[{index}].values) : 1)" for index in range(MAX_GRID_AXES)
    )
    return f"!has(self.grid) || {sizes} <= {MAX_TRIALS}"


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
                "has(self.grid) || !has(self.parallelism) || self.parallelism == 1 || "
                "(has(self.start) && has(self.end))",
                "parallelism above 1 needs start and end: the period is split into that many slices",
                field_path=".parallelism",
                reason="FieldValueRequired",
            ),
            common.cel_rule(
                "has(self.grid) || !has(self.parallelism) || self.parallelism == 1 || "
                "!has(self.start) || !has(self.end) || !has(self.timeframeSeconds) || "
                "(self.end - self.start).getSeconds() >= self.parallelism * self.timeframeSeconds",
                "parallelism must not exceed the bars of timeframeSeconds between start and end: "
                "each slice holds at least one bar",
                field_path=".parallelism",
                reason="FieldValueInvalid",
            ),
            common.cel_rule(
                _trial_count_rule(),
                f"grid: at most {MAX_TRIALS} trials: the product of the axes' numbers of values must not "
                f"exceed {MAX_TRIALS}",
                field_path=".grid",
                reason="FieldValueInvalid",
            ),
            common.cel_rule(
                "!has(self.grid) || self.grid.all(axis, self.agents.exists(agent, agent.name == axis.agent))",
                "grid: each axis's agent must be the name of one of agents",
                field_path=".grid",
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
            json_schema_extra=common.keyed_list("name"),
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

    parallelism: Annotated[pydantic.StrictInt, pydantic.Field(ge=1, le=MAX_PARALLELISM)] = 1
    """Without a grid: pods the period [start, end) is split across, one contiguous slice each
    (1 to 32; above 1, start and end are required). Each slice is an independent backtest that
    starts flat with the initial cash; status aggregates them. With a grid: how many trials
    (one pod each, over the whole period) run at once, as a Job's parallelism; the period is
    not split. See manifests/backtest/README.md."""

    grid: (
        Annotated[
            list[GridAxis],
            pydantic.Field(
                min_length=1,
                max_length=MAX_GRID_AXES,
                json_schema_extra=common.keyed_list("agent", "parameter"),
            ),
        ]
        | None
    ) = None
    """A grid of agent parameters: 1 to 4 axes, each the values one field of one agent takes.
    Every combination (the cartesian product, at most 32) is a trial: an independent backtest
    of the whole period with the agents' specs so changed, in a pod of its own. Status lists
    each trial and names the best by objective."""

    objective: BacktestObjective = BacktestObjective.TOTAL_RETURN
    """With a grid: the figure the best trial has the most of, totalReturn (default) or
    sharpe; ties go to the lowest trial number. Ignored without a grid."""

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
        # Mirrors the CEL rules above (immutability needs the old object: API server only).
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")
        if self.grid is not None:
            self._check_grid(self.grid)
            return self
        if self.parallelism > 1 and (self.start is None or self.end is None):
            raise ValueError(
                "parallelism above 1 needs start and end: the period is split into that many slices"
            )
        if (
            self.parallelism > 1
            and self.start is not None
            and self.end is not None
            and self.end - self.start < datetime.timedelta(seconds=self.parallelism * self.timeframe_seconds)
        ):
            raise ValueError(
                "parallelism must not exceed the bars of timeframeSeconds between start and end: "
                "each slice holds at least one bar"
            )
        return self

    def _check_grid(self, grid: list[GridAxis]) -> None:
        common.unique_names([f"{axis.agent}.{axis.parameter.value}" for axis in grid], "grid axes")
        names = {agent.name for agent in self.agents}
        if any(axis.agent not in names for axis in grid):
            raise ValueError("grid: each axis's agent must be the name of one of agents")
        if math.prod(len(axis.values) for axis in grid) > MAX_TRIALS:
            raise ValueError(
                f"grid: at most {MAX_TRIALS} trials: the product of the axes' numbers of values must not "
                f"exceed {MAX_TRIALS}"
            )

    def trials(self) -> list[Trial]:
        """The grid's trials, numbered from 1: the cartesian product of the axes' values in
        their order, the last axis varying fastest (axes a: [1, 2], b: [x, y] give a=1 b=x,
        a=1 b=y, a=2 b=x, a=2 b=y). Without a grid: none."""
        if self.grid is None:
            return []
        axes = [
            [TrialSetting(axis.agent, axis.parameter, value) for value in axis.values] for axis in self.grid
        ]
        return [Trial(number, settings) for number, settings in enumerate(itertools.product(*axes), start=1)]

    def slices(self) -> list[PeriodSlice]:
        """The period cut into ``parallelism`` contiguous slices, numbered from 1.

        With N whole bars of ``timeframeSeconds`` in [start, end), slice k (of p) covers
        [start + floor((k-1)N/p) bars, start + floor(kN/p) bars); the last ends at ``end``, so a
        part-bar remainder goes to it. Deterministic, non-overlapping, each at least one bar
        (the CEL rule guarantees N >= p). With parallelism 1, or a grid: one slice, the whole
        period."""
        if self.parallelism == 1 or self.grid is not None or self.start is None or self.end is None:
            return [PeriodSlice(1, self.start, self.end)]
        bar = datetime.timedelta(seconds=self.timeframe_seconds)
        bars = (self.end - self.start) // bar
        bounds = [self.start + bar * (k * bars // self.parallelism) for k in range(self.parallelism)]
        return [
            PeriodSlice(k + 1, begin, finish)
            for k, (begin, finish) in enumerate(itertools.pairwise([*bounds, self.end]))
        ]


class PeriodSlice(NamedTuple):
    """One slice of a BacktestRun's period: an independent ``sapphire backtest --from --to``."""

    number: int
    """1 to parallelism, in time order."""
    start: datetime.datetime | None
    end: datetime.datetime | None


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


class BacktestFigures(common.SpecModel):
    """The headline figures of a backtest, as its report has them (decimal strings)."""

    model_config = pydantic.ConfigDict(extra="ignore")

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


SliceMessage = Annotated[str, pydantic.Field(max_length=1024)]


class BacktestSliceStatus(BacktestFigures):
    """One slice of a run with parallelism above 1: its period, its pod and its own headline."""

    slice: Annotated[pydantic.StrictInt, pydantic.Field(ge=1, le=MAX_PARALLELISM)]
    """The slice's number, 1 to parallelism, in time order."""

    start: datetime.datetime | None = None
    """The slice's first instant (inclusive), as the pod's --from."""

    end: datetime.datetime | None = None
    """The slice's end (exclusive), as the pod's --to."""

    phase: BacktestRunPhase | None = None
    """Running, Succeeded or Failed (also when stopped because another slice failed)."""

    pod_name: Annotated[str, pydantic.Field(max_length=63)] | None = None
    """The slice's pod."""

    report: Annotated[str, pydantic.Field(max_length=600)] | None = None
    """Where the slice's full report is: persistentVolumeClaim/<claim>/<run>/<slice>/report.json."""

    message: SliceMessage | None = None
    """The slice's headline, or why it failed."""


class TrialParameter(common.SpecModel):
    """One setting of a trial: the value one agent's field had in it."""

    agent: Annotated[str, pydantic.Field(max_length=63)]
    """The agent."""

    parameter: GridParameter
    """The field, as the grid's axis names it."""

    value: GridValue
    """Its value in this trial."""


class BacktestTrialStatus(BacktestFigures):
    """One trial of a grid: its settings, its pod and its own headline."""

    trial: Annotated[pydantic.StrictInt, pydantic.Field(ge=1, le=MAX_TRIALS)]
    """The trial's number, 1 to the number of trials (the last axis varies fastest)."""

    parameters: Annotated[
        list[TrialParameter],
        pydantic.Field(max_length=MAX_GRID_AXES, json_schema_extra={"x-kubernetes-list-type": "atomic"}),
    ] = pydantic.Field(default_factory=list)
    """The trial's value of each axis, in the grid's order."""

    phase: BacktestRunPhase | None = None
    """Pending (waiting for a free pod of parallelism), Running, Succeeded or Failed (also
    when stopped, or never started, because another trial failed)."""

    pod_name: Annotated[str, pydantic.Field(max_length=63)] | None = None
    """The trial's pod."""

    report: Annotated[str, pydantic.Field(max_length=600)] | None = None
    """Where the trial's full report is: persistentVolumeClaim/<claim>/<run>/trial-<n>/report.json."""

    message: SliceMessage | None = None
    """The trial's headline, or why it failed."""


class BacktestRunStatus(common.RunStatus, BacktestFigures):
    """Observed state of the run and its headline results, written by the operator.

    With parallelism above 1 the figures aggregate the slices: totalReturn compounds theirs,
    trades, fees and quotes are sums, maxDrawdown is the worst slice's (a lower bound), and
    sharpe and finalEquity are absent. With a grid they are the best trial's, all of them
    (see manifests/backtest/README.md)."""

    phase: BacktestRunPhase | None = None
    """Pending (waiting for a referenced TradingAgent), Running, Succeeded or Failed."""

    slices: Annotated[
        list[BacktestSliceStatus],
        pydantic.Field(
            max_length=MAX_PARALLELISM,
            json_schema_extra=common.keyed_list("slice"),
        ),
    ] = pydantic.Field(default_factory=list)
    """With parallelism above 1: each slice's period, pod, phase and headline."""

    trials: Annotated[
        list[BacktestTrialStatus],
        pydantic.Field(
            max_length=MAX_TRIALS,
            json_schema_extra=common.keyed_list("trial"),
        ),
    ] = pydantic.Field(default_factory=list)
    """With a grid: each trial's settings, pod, phase and headline."""

    best_trial: Annotated[pydantic.StrictInt, pydantic.Field(ge=1, le=MAX_TRIALS)] | None = None
    """With a grid, once every trial succeeded: the number of the trial with the most of
    spec.objective, whose figures the run's are; absent when no trial has that figure."""

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
