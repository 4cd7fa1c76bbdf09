"""What ``sapphire up`` will run, read from TradingAgent YAML (pure: files in, a plan out).

The files are the very ones ``kubectl apply -f`` sends to a cluster and are validated by the
same models. What a laptop cannot honour is said out loud, as a notice, never dropped
silently:

* other kinds (MigrationRun: ``sapphire up`` migrates its own database to head) are skipped;
* paused agents are not started;
* ``spec.model`` names a cloud LLM whose credentials live in a Kubernetes Secret or a pod's
  Google service account, which a laptop has neither of; such agents run deterministically
  (no model), and the notice says so.

A file that is not YAML, a document that is not a mapping, or a field the model refuses
raises :class:`PlanError` with one line naming the file, the agent and the field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pydantic
import yaml

from sapphire.domain.risk import NotionalLimits
from sapphire.resources import manifests, tradingagent

DEFAULT_SYMBOLS = ("BTC-USD", "ETH-USD", "AAPL")
"""The instruments when every agent is in all-market mode (the trader API's defaults)."""


class PlanError(ValueError):
    """The manifests cannot be run; the message is one line naming the file and the field."""


@dataclasses.dataclass(frozen=True)
class RiskLimits(NotionalLimits):
    """``spec.risk`` of the executor, in the account currency: the shared notional limits and
    the bracket it attaches."""

    stop_loss_bps: Decimal | None = None
    take_profit_bps: Decimal | None = None
    trailing_stop_bps: Decimal | None = None
    """The bracket attached to every entry (``agents.executor.Protection``)."""


@dataclasses.dataclass(frozen=True)
class LocalAgent:
    """One TradingAgent as ``sapphire up`` runs it: a task in this process."""

    name: str
    role: str
    symbols: tuple[str, ...]
    """Empty: all-market mode."""
    interval_seconds: int
    risk: RiskLimits | None
    model: str | None
    """``provider/name`` of the spec's model, which this run does not call."""
    source: Path
    spec: tradingagent.TradingAgentSpec
    """The whole spec, for the one translation to settings (``agents.settings.spec_settings``)."""


def model_not_called(agent: LocalAgent) -> str:
    """The notice for an agent whose ``spec.model`` a local run does not call."""
    return (
        f"{agent.name}: spec.model {agent.model} is not called locally (its credentials "
        "live in the cluster); this agent runs without a model (deterministic analysis)"
    )


@dataclasses.dataclass(frozen=True)
class Plan:
    agents: tuple[LocalAgent, ...]
    notices: tuple[str, ...]

    @property
    def symbols(self) -> tuple[str, ...]:
        """The instruments to list and simulate: every symbol an agent names, in order."""
        named = dict.fromkeys(symbol for agent in self.agents for symbol in agent.symbols)
        return tuple(named) or DEFAULT_SYMBOLS

    @property
    def executors(self) -> tuple[LocalAgent, ...]:
        return tuple(agent for agent in self.agents if agent.role == tradingagent.Role.EXECUTOR.value)


def _documents(file: Path) -> list[Any]:
    try:
        with file.open(encoding="utf-8") as stream:
            return [document for document in yaml.safe_load_all(stream) if document is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise PlanError(f"{where}: not valid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PlanError(f"{file}: cannot read: {error}") from None


def _field_problems(error: pydantic.ValidationError) -> str:
    problems = []
    for issue in error.errors(include_url=False):
        where = ".".join(str(part) for part in issue["loc"])
        message = str(issue["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def _name_of(document: Mapping[str, Any]) -> str:
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return f" {name!r}" if isinstance(name, str) else ""


def _local_agent(agent: tradingagent.TradingAgent, source: Path) -> LocalAgent:
    spec = agent.spec
    risk = None
    if spec.risk is not None:
        risk = RiskLimits(
            max_order_notional=spec.risk.max_order_notional,
            max_position_notional=spec.risk.max_position_notional,
            max_gross_exposure=spec.risk.max_gross_exposure,
            max_daily_loss=spec.risk.max_daily_loss,
            stop_loss_bps=spec.risk.stop_loss_bps,
            take_profit_bps=spec.risk.take_profit_bps,
            trailing_stop_bps=spec.risk.trailing_stop_bps,
        )
    model = f"{spec.model.provider.value}/{spec.model.name}" if spec.model is not None else None
    return LocalAgent(
        name=agent.metadata.name,
        role=spec.role.value,
        symbols=tuple(spec.symbols),
        interval_seconds=spec.interval_seconds,
        risk=risk,
        model=model,
        source=source,
        spec=spec,
    )


def load_plan(path: Path) -> Plan:
    """The agents in ``path`` (a YAML file, or a directory of them) and what to tell the user."""
    if not path.exists():
        raise PlanError(f"{path}: no such file or directory")
    files = manifests.manifest_files(path)
    if not files:
        raise PlanError(f"{path}: no *.yaml or *.yml files in this directory")
    agents: dict[str, LocalAgent] = {}
    notices: list[str] = []
    for file in files:
        for index, document in enumerate(_documents(file), start=1):
            where = f"{file} (document {index})" if index > 1 else str(file)
            if not isinstance(document, Mapping):
                raise PlanError(f"{where}: expected a mapping with apiVersion, kind, metadata and spec")
            try:
                resource = manifests.parse_resource(document)
            except manifests.UnknownKindError as error:
                notices.append(f"skipped {where}: {error}")
                continue
            except pydantic.ValidationError as error:
                kind = document.get("kind")
                raise PlanError(f"{where}: {kind}{_name_of(document)}: {_field_problems(error)}") from None
            if not isinstance(resource, tradingagent.TradingAgent):
                why = (
                    "sapphire up migrates its own database to head"
                    if resource.kind == "MigrationRun"
                    else "a BacktestRun runs in the cluster; locally, use sapphire backtest"
                )
                notices.append(f"skipped {where}: {resource.kind} {resource.metadata.name!r} ({why})")
                continue
            local = _local_agent(resource, file)
            if local.name in agents:
                raise PlanError(
                    f"{where}: metadata.name: TradingAgent {local.name!r} is also defined in "
                    f"{agents[local.name].source}"
                )
            if resource.spec.paused:
                notices.append(f"{local.name}: spec.paused is true, not started")
                continue
            if local.model is not None:
                notices.append(model_not_called(local))
            agents[local.name] = local
    if not agents:
        raise PlanError(f"{path}: no TradingAgent to run (every document was skipped or paused)")
    if not any(agent.role == tradingagent.Role.EXECUTOR.value for agent in agents.values()):
        notices.append("no executor among the agents: signals will flow, but no orders will be placed")
    return Plan(agents=tuple(agents.values()), notices=tuple(notices))
