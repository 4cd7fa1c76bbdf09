"""BacktestRun reconciliation: bare Pods running ``sapphire backtest``, the headline from them.

A run has one pod per slice of its period (``spec.parallelism``, 1 by default:
:meth:`sapphire.resources.backtestrun.BacktestRunSpec.slices`), each labelled with its slice's
number and named ``<run>-<slice>``. Each slice is an independent backtest; the run succeeds
when all of them did (the figures chained by :func:`sapphire.domain.headline.chain`) and fails
as soon as one fails, stopping the others.

The machinery is MigrationRun's (:mod:`sapphire.operator.migrations`): a bare Pod with a
deterministic name, so a restarted operator finds the run in progress and a duplicate create
fails with AlreadyExists; the result read from the backtest container's own terminated state
and termination message (:class:`sapphire.domain.headline.Headline`); the pod deleted
``ttlSecondsAfterFinished`` after the result is recorded.

There is one attempt: a replay is deterministic, so a failed one fails again. The agents are
resolved when the pod is created: a referenced TradingAgent's spec is copied into the pod's
environment then, so a later change of the TradingAgent does not change a running backtest.
A reference to a TradingAgent that does not exist (yet) keeps the run Pending.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sapphire import config
from sapphire.domain.headline import Headline, chain
from sapphire.operator import builders, kubeapi, migrations, payloads
from sapphire.operator.payloads import Json
from sapphire.operator.settings import OperatorSettings
from sapphire.resources import backtestrun, common, tradingagent

Phase = backtestrun.BacktestRunPhase


@dataclass(frozen=True)
class Decision:
    """What to do now, and the status that follows. ``create_slices``/``delete_pods`` are I/O."""

    status: Json
    create_slices: tuple[backtestrun.PeriodSlice, ...] = ()
    delete_pods: tuple[str, ...] = ()
    kill_pods: tuple[str, ...] = ()
    event: tuple[str, str, str] | None = None


def report_location(
    name: str, spec: backtestrun.BacktestRunSpec, period: backtestrun.PeriodSlice | None = None
) -> str | None:
    """Where the pod of ``period`` writes its full report, as status.report says it; for the
    whole of a split run (``period`` None), the directory holding one report per slice."""
    if spec.report_claim_name is None:
        return None
    claim = f"persistentVolumeClaim/{spec.report_claim_name}"
    if period is None and spec.parallelism > 1:
        return f"{claim}/{name}/"
    directory = builders.backtest_report_directory(name, spec, period or spec.slices()[0])
    return f"{claim}/{directory}/report.json"


def _figures(headline: Headline) -> Json:
    figures: Json = {
        "totalReturn": headline.total_return,
        "sharpe": headline.sharpe,
        "maxDrawdown": headline.max_drawdown,
        "trades": headline.trades,
        "fees": headline.fees,
        "finalEquity": headline.final_equity,
        "quotes": headline.quotes,
        "dataSha256": headline.data_sha256,
    }
    return {key: value for key, value in figures.items() if value is not None}


def _summary(headline: Headline) -> str:
    return (
        f"return {headline.total_return}, sharpe {headline.sharpe or '-'}, "
        f"max drawdown {headline.max_drawdown}, {headline.trades} trades over {headline.quotes} quotes"
    )


@dataclass(frozen=True)
class SliceOutcome:
    """Where one slice's pod is: running (``phase`` Running), or its result."""

    phase: Phase
    reason: str = ""
    message: str = ""
    headline: Headline | None = None
    kill: bool = False
    """Still running past activeDeadlineSeconds: stop the pod."""


def slice_outcome(
    attempt: migrations.Attempt | None, *, spec: backtestrun.BacktestRunSpec, now: datetime.datetime
) -> SliceOutcome:
    """One slice's state, read from its pod (None: not created yet). Pure."""
    if attempt is None:
        return SliceOutcome(Phase.RUNNING, message="creating the pod")
    if not attempt.finished:
        started = attempt.started_at or now
        if (now - started).total_seconds() > spec.active_deadline_seconds:
            message = f"the backtest ran longer than activeDeadlineSeconds={spec.active_deadline_seconds}"
            return SliceOutcome(Phase.FAILED, "DeadlineExceeded", message, kill=True)
        waiting = f"the backtest pod is waiting: {attempt.waiting}" if attempt.waiting else ""
        return SliceOutcome(Phase.RUNNING, message=waiting)
    if attempt.deadline_exceeded:
        return SliceOutcome(Phase.FAILED, "DeadlineExceeded", "the backtest pod exceeded its deadline")
    headline = Headline.parse(attempt.message)
    if attempt.exit_code == 0:
        if headline is None or headline.error is not None:
            return SliceOutcome(Phase.FAILED, "NoReport", "the backtest exited 0 without its JSON headline")
        return SliceOutcome(Phase.SUCCEEDED, "Backtested", _summary(headline), headline)
    failure = (headline.error if headline is not None else None) or attempt.message
    message = f"exit code {attempt.exit_code}: {failure or 'no message'}"
    return SliceOutcome(Phase.FAILED, "BacktestFailed", message)


def _slice_status(
    name: str,
    spec: backtestrun.BacktestRunSpec,
    period: backtestrun.PeriodSlice,
    outcome: SliceOutcome,
) -> Json:
    entry: Json = {
        "slice": period.number,
        "start": migrations.iso(period.start),
        "end": migrations.iso(period.end),
        "phase": outcome.phase.value,
        "podName": builders.backtest_pod_name(name, period),
        "report": report_location(name, spec, period),
        "message": config.redact_url(outcome.message)[-SLICE_MESSAGE_LIMIT:] or None,
        **(_figures(outcome.headline) if outcome.headline is not None else {}),
    }
    return {key: value for key, value in entry.items() if value is not None}


SLICE_MESSAGE_LIMIT = 1024


def decide(
    *,
    run: payloads.BacktestRun,
    attempts: Mapping[int, migrations.Attempt],
    missing_agents: Sequence[str],
    now: datetime.datetime,
) -> Decision:
    """The next step of one BacktestRun, from its slices' pods (``attempts``, by slice number).
    Pure: everything it needs is passed in."""
    name = str(run["metadata"]["name"])
    spec = backtestrun.BacktestRunSpec.model_validate(run["spec"])
    periods = spec.slices()
    split = len(periods) > 1
    status: Json = dict(run.get("status") or {})
    generation = int(run["metadata"].get("generation", 0))
    status["observedGeneration"] = generation
    status["agents"] = [agent.name for agent in spec.agents]

    def conditions(**states: tuple[bool, str, str]) -> list[Json]:
        return common.apply_conditions(
            status.get("conditions") or [], states, observed_generation=generation, now=now
        )

    def finish(succeeded: bool, reason: str, message: str, kill: tuple[str, ...] = ()) -> Decision:
        status.update(
            phase=(Phase.SUCCEEDED if succeeded else Phase.FAILED).value,
            message=config.redact_url(message)[-migrations.MESSAGE_LIMIT :],
        )
        status["finishedAt"] = status.get("finishedAt") or migrations.iso(now)
        status["conditions"] = conditions(
            Complete=(succeeded, reason, message if succeeded else "the backtest failed"),
            Failed=(not succeeded, reason, message if not succeeded else "the backtest succeeded"),
            Progressing=(False, reason, "the backtest is finished"),
        )
        event = ("Normal" if succeeded else "Warning", reason, status["message"])
        return Decision(status=status, kill_pods=kill, event=event)

    if migrations.is_finished(run):
        pods = tuple(sorted(attempt.pod_name for attempt in attempts.values()))
        delete = migrations.after_finish(
            status, pods=pods, ttl_seconds=spec.ttl_seconds_after_finished, now=now
        )
        return Decision(status=status, delete_pods=delete)

    missing = tuple(period for period in periods if period.number not in attempts)
    if not attempts:
        if missing_agents:
            message = f"waiting for TradingAgent {', '.join(missing_agents)} in this namespace"
            event = None if status.get("message") == message else ("Warning", "AgentNotFound", message)
            status.update(phase=Phase.PENDING.value, message=message)
            status["conditions"] = conditions(Progressing=(False, "AgentNotFound", message))
            return Decision(status=status, event=event)
        slices = f" in {len(periods)} slices" if split else ""
        message = f"replaying {spec.data.url} through {len(spec.agents)} agent(s){slices}"
        status.update(
            phase=Phase.RUNNING.value,
            message=config.redact_url(message),
            startedAt=status.get("startedAt") or migrations.iso(now),
            report=report_location(name, spec),
        )
        if split:
            status["slices"] = [
                _slice_status(name, spec, period, SliceOutcome(Phase.RUNNING)) for period in periods
            ]
        else:
            status["podName"] = builders.backtest_pod_name(name, periods[0])
        status["conditions"] = conditions(Progressing=(True, "Replaying", status["message"]))
        return Decision(
            status=status, create_slices=missing, event=("Normal", "BacktestStarted", status["message"])
        )

    outcomes = [slice_outcome(attempts.get(period.number), spec=spec, now=now) for period in periods]
    failed = next((i for i, outcome in enumerate(outcomes) if outcome.phase is Phase.FAILED), None)
    kill: tuple[str, ...] = ()
    if failed is not None:
        # One failed slice fails the run: stop the others, their result would not be used.
        culprit = periods[failed]
        stop = f"stopped: slice {culprit.number} failed"
        outcomes = [
            SliceOutcome(Phase.FAILED, message=stop) if outcome.phase is Phase.RUNNING else outcome
            for outcome in outcomes
        ]
        kill = tuple(
            builders.backtest_pod_name(name, period)
            for period, outcome in zip(periods, outcomes, strict=True)
            if period.number in attempts and not attempts[period.number].finished
        )
    if split:
        status["slices"] = [
            _slice_status(name, spec, period, outcome)
            for period, outcome in zip(periods, outcomes, strict=True)
        ]
    else:
        status["podName"] = attempts[1].pod_name if 1 in attempts else status.get("podName")
    if failed is not None:
        reason, message = outcomes[failed].reason, outcomes[failed].message
        if split:
            culprit = periods[failed]
            period = f"{migrations.iso(culprit.start)} to {migrations.iso(culprit.end)}"
            message = f"slice {culprit.number} of {len(periods)} ({period}) failed: {message}"
        return finish(False, reason, message, kill=kill)
    headlines = [outcome.headline for outcome in outcomes if outcome.headline is not None]
    if len(headlines) == len(periods):
        headline = chain(headlines) if split else headlines[0]
        status.update(_figures(headline))
        prefix = f"{len(periods)} slices chained: " if split else ""
        return finish(True, "Backtested", prefix + _summary(headline))
    status["phase"] = Phase.RUNNING.value
    waiting = [
        outcome.message for outcome in outcomes if outcome.message.startswith("the backtest pod is waiting")
    ]
    if split:
        status["message"] = f"{len(headlines)} of {len(periods)} slices finished"
    if waiting:
        status["message"] = config.redact_url(waiting[0])[-migrations.MESSAGE_LIMIT :]
    return Decision(status=status, create_slices=missing)


async def resolve_agents(
    api: kubeapi.KubeApi, *, namespace: str, spec: backtestrun.BacktestRunSpec
) -> tuple[dict[str, Mapping[str, Any]], list[str]]:
    """Each agent's TradingAgent spec (read now for a reference), and the references not found."""
    specs: dict[str, Mapping[str, Any]] = {}
    missing: list[str] = []
    for agent in spec.agents:
        if agent.spec is not None:
            specs[agent.name] = agent.spec.to_wire()
            continue
        reference = str(agent.trading_agent_ref)
        body = await api.get(
            kubeapi.namespaced(tradingagent.API_VERSION, namespace, tradingagent.PLURAL, reference),
            payloads.TradingAgent,
        )
        if body is None:
            missing.append(reference)
        else:
            specs[agent.name] = body.get("spec") or {}
    return specs, missing


def slice_number(pod: payloads.Pod) -> int:
    """The slice a backtest pod replays; 1 for a pod without the label (an older operator's)."""
    return int(pod["metadata"].get("labels", {}).get(builders.SLICE_LABEL, "1"))


def agents_of(pod: payloads.Pod) -> str | None:
    """The agents' YAML an existing slice pod was given, so a slice created later (after a
    restart of the operator between two creates) replays the very same agents."""
    for container in pod.get("spec", {}).get("containers", []):
        for variable in container.get("env", []):
            if variable.get("name") == builders.BACKTEST_AGENTS_ENV and "value" in variable:
                return str(variable["value"])
    return None


async def reconcile(
    api: kubeapi.KubeApi,
    *,
    body: payloads.BacktestRun,
    settings: OperatorSettings,
    now: datetime.datetime,
) -> Decision:
    """Observe, decide, act. Safe to run concurrently with itself and after any crash."""
    metadata = body["metadata"]
    name, namespace = str(metadata["name"]), str(metadata["namespace"])
    pods = await migrations.owned_pods(api, body, label=builders.BACKTEST_LABEL)
    attempts = {
        slice_number(pod): migrations.read_attempt(pod, container_name=backtestrun.BACKTEST_CONTAINER)
        for pod in pods
    }
    spec = backtestrun.BacktestRunSpec.model_validate(body["spec"])
    agents: dict[str, Mapping[str, Any]] = {}
    missing: list[str] = []
    if not attempts and not migrations.is_finished(body):
        agents, missing = await resolve_agents(api, namespace=namespace, spec=spec)
    decision = decide(run=body, attempts=attempts, missing_agents=missing, now=now)
    agents_yaml = next(filter(None, map(agents_of, pods)), None) or builders.backtest_agents_yaml(agents)
    manifests = [
        builders.build_backtest_pod(
            name=name,
            namespace=namespace,
            spec=spec,
            period=period,
            agents_yaml=agents_yaml,
            settings=settings,
        )
        for period in decision.create_slices
    ]
    await migrations.act_on_pods(
        api, owner=body, create=manifests, kill=decision.kill_pods, delete=decision.delete_pods
    )
    return decision
