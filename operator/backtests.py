"""BacktestRun reconciliation: bare Pods running ``sapphire backtest``, the headline from them.

A run has one pod per slice of its period (``spec.parallelism``, 1 by default:
:meth:`sapphire.resources.backtestrun.BacktestRunSpec.slices`), each labelled with its slice's
number and named ``<run>-<slice>``; or, with a ``spec.grid``, one pod per trial
(:meth:`~sapphire.resources.backtestrun.BacktestRunSpec.trials`, labelled with the trial's
number), ``parallelism`` of them at a time, each given the agents with its settings
(:func:`sapphire.operator.builders.trial_agents`). Each slice or trial is an independent
backtest; the run succeeds when all of them did (the slices' figures chained by
:func:`sapphire.domain.headline.chain`, or the best trial's by
:func:`sapphire.domain.headline.best`) and fails as soon as one fails, stopping the others.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sapphire import config
from sapphire.domain.headline import Headline, Objective, best, chain
from sapphire.operator import builders, kubeapi, migrations, payloads
from sapphire.operator.payloads import Json
from sapphire.operator.settings import OperatorSettings
from sapphire.resources import backtestrun, common, tradingagent

Phase = backtestrun.BacktestRunPhase


@dataclass(frozen=True)
class Decision:
    """What to do now, and the status that follows. ``create``/``delete_pods`` are I/O."""

    status: Json
    create: tuple[int, ...] = ()
    """The numbers of the slices (or trials) whose pods to create."""
    delete_pods: tuple[str, ...] = ()
    kill_pods: tuple[str, ...] = ()
    event: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class Part:
    """What one pod of a run replays: a slice of the period, a trial of the grid, or the whole."""

    number: int
    """The slice's or trial's number, 1 for the whole run; the pod is ``<run>-<number>``."""
    title: str
    """How messages name it: ``slice 2 of 4 (<start> to <end>)``, ``trial 3 of 4 (<settings>)``."""
    entry: Json
    """The fields that identify it in its status entry (``slice``, ``start``, ``end`` / ``trial``,
    ``parameters``)."""


def run_parts(spec: backtestrun.BacktestRunSpec) -> list[Part]:
    """The pods' shares of a run, in order: its grid's trials, its period's slices, or the whole."""
    trials = spec.trials()
    if trials:
        return [
            Part(
                trial.number,
                f"trial {trial.number} of {len(trials)} ({trial.label()})",
                {
                    "trial": trial.number,
                    "parameters": [
                        {"agent": setting.agent, "parameter": setting.parameter.value, "value": setting.value}
                        for setting in trial.settings
                    ],
                },
            )
            for trial in trials
        ]
    periods = spec.slices()
    if len(periods) == 1:
        return [Part(1, "the backtest", {})]
    return [
        Part(
            period.number,
            f"slice {period.number} of {len(periods)} "
            f"({migrations.iso(period.start)} to {migrations.iso(period.end)})",
            {
                "slice": period.number,
                "start": migrations.iso(period.start),
                "end": migrations.iso(period.end),
            },
        )
        for period in periods
    ]


def report_location(name: str, spec: backtestrun.BacktestRunSpec, number: int | None = None) -> str | None:
    """Where the pod of slice (or trial) ``number`` writes its full report, as status.report
    says it; for the whole of a split run or a grid (``number`` None), the directory holding
    one report per slice or trial."""
    if spec.report_claim_name is None:
        return None
    claim = f"persistentVolumeClaim/{spec.report_claim_name}"
    if number is None and (spec.parallelism > 1 or spec.grid is not None):
        return f"{claim}/{name}/"
    directory = builders.backtest_report_directory(name, spec, number or 1)
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
    """Where one slice's (or trial's) pod is: not created yet, running, or its result."""

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


def _part_status(name: str, spec: backtestrun.BacktestRunSpec, part: Part, outcome: SliceOutcome) -> Json:
    entry: Json = {
        **part.entry,
        "phase": outcome.phase.value,
        "podName": builders.backtest_pod_name(name, part.number)
        if outcome.phase is not Phase.PENDING
        else None,
        "report": report_location(name, spec, part.number),
        "message": config.redact_url(outcome.message)[-SLICE_MESSAGE_LIMIT:] or None,
        **(_figures(outcome.headline) if outcome.headline is not None else {}),
    }
    return {key: value for key, value in entry.items() if value is not None}


SLICE_MESSAGE_LIMIT = 1024

OBJECTIVES: dict[backtestrun.BacktestObjective, Objective] = {
    backtestrun.BacktestObjective.TOTAL_RETURN: "total_return",
    backtestrun.BacktestObjective.SHARPE: "sharpe",
}
"""Each objective a spec may name, as the headline's figure."""


def decide(
    *,
    run: payloads.BacktestRun,
    attempts: Mapping[int, migrations.Attempt],
    missing_agents: Sequence[str],
    now: datetime.datetime,
    invalid_grid: str | None = None,
) -> Decision:
    """The next step of one BacktestRun, from its slices' (or trials') pods (``attempts``, by
    number). ``invalid_grid`` says why a trial's agents cannot be built, when one cannot.
    Pure: everything it needs is passed in."""
    name = str(run["metadata"]["name"])
    spec = backtestrun.BacktestRunSpec.model_validate(run["spec"])
    parts = run_parts(spec)
    grid = spec.grid is not None
    noun = "trial" if grid else "slice"
    listed = "trials" if grid else "slices" if len(parts) > 1 else None
    """The status list of the parts; none for a run of one pod, which has podName."""
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

    running = tuple(attempt.pod_name for attempt in attempts.values() if not attempt.finished)
    if not attempts and missing_agents:
        message = f"waiting for TradingAgent {', '.join(missing_agents)} in this namespace"
        event = None if status.get("message") == message else ("Warning", "AgentNotFound", message)
        status.update(phase=Phase.PENDING.value, message=message)
        status["conditions"] = conditions(Progressing=(False, "AgentNotFound", message))
        return Decision(status=status, event=event)
    if invalid_grid is not None:
        return finish(False, "InvalidGrid", invalid_grid, kill=tuple(sorted(running)))

    # A pod for each part that has none, as long as fewer than parallelism are running: all at
    # once for the slices of a period (as many as parallelism), parallelism at a time for trials.
    missing = [part.number for part in parts if part.number not in attempts]
    create = tuple(missing[: max(0, spec.parallelism - len(running))])
    waiting_for_pod = SliceOutcome(
        Phase.PENDING, message=f"waiting for a free pod (parallelism {spec.parallelism})"
    )
    outcomes = [
        slice_outcome(attempts[part.number], spec=spec, now=now)
        if part.number in attempts
        else slice_outcome(None, spec=spec, now=now)
        if part.number in create
        else waiting_for_pod
        for part in parts
    ]
    failed = next((i for i, outcome in enumerate(outcomes) if outcome.phase is Phase.FAILED), None)
    kill: tuple[str, ...] = ()
    if failed is not None:
        # One failed part fails the run: stop the others, their result would not be used, and
        # start no more.
        culprit = parts[failed]
        stop = SliceOutcome(Phase.FAILED, message=f"stopped: {noun} {culprit.number} failed")
        never = SliceOutcome(Phase.FAILED, message=f"not run: {noun} {culprit.number} failed")
        outcomes = [
            never if part.number not in attempts else stop if outcome.phase is Phase.RUNNING else outcome
            for part, outcome in zip(parts, outcomes, strict=True)
        ]
        kill = tuple(
            builders.backtest_pod_name(name, part.number)
            for part in parts
            if part.number in attempts and not attempts[part.number].finished
        )
    if listed is not None:
        status[listed] = [
            _part_status(name, spec, part, outcome) for part, outcome in zip(parts, outcomes, strict=True)
        ]
    else:
        status["podName"] = attempts[1].pod_name if 1 in attempts else builders.backtest_pod_name(name, 1)
    if failed is not None:
        reason, message = outcomes[failed].reason, outcomes[failed].message
        if listed is not None:
            message = f"{parts[failed].title} failed: {message}"
        return finish(False, reason, message, kill=kill)
    headlines = [outcome.headline for outcome in outcomes if outcome.headline is not None]
    if len(headlines) == len(parts):
        if grid:
            return _finish_grid(status, spec, parts, headlines, finish)
        headline = chain(headlines) if listed is not None else headlines[0]
        status.update(_figures(headline))
        prefix = f"{len(parts)} slices chained: " if listed is not None else ""
        return finish(True, "Backtested", prefix + _summary(headline))
    status["phase"] = Phase.RUNNING.value
    if not attempts:
        shares = f" in {len(parts)} slices" if listed == "slices" else ""
        if grid:
            shares = f" in {len(parts)} trials, {min(spec.parallelism, len(parts))} at a time"
        message = f"replaying {spec.data.url} through {len(spec.agents)} agent(s){shares}"
        status.update(
            message=config.redact_url(message),
            startedAt=status.get("startedAt") or migrations.iso(now),
            report=report_location(name, spec),
        )
        status["conditions"] = conditions(Progressing=(True, "Replaying", status["message"]))
        return Decision(status=status, create=create, event=("Normal", "BacktestStarted", status["message"]))
    waiting = [
        outcome.message for outcome in outcomes if outcome.message.startswith("the backtest pod is waiting")
    ]
    if listed is not None:
        status["message"] = f"{len(headlines)} of {len(parts)} {listed} finished"
    if waiting:
        status["message"] = config.redact_url(waiting[0])[-migrations.MESSAGE_LIMIT :]
    return Decision(status=status, create=create)


def _finish_grid(
    status: Json,
    spec: backtestrun.BacktestRunSpec,
    parts: Sequence[Part],
    headlines: Sequence[Headline],
    finish: Callable[[bool, str, str], Decision],
) -> Decision:
    """Every trial succeeded: the run's figures are the best trial's, all of them."""
    objective = spec.objective.value
    index = best(headlines, OBJECTIVES[spec.objective])
    if index is None:
        return finish(
            True, "Backtested", f"{len(parts)} trials finished; none has a {objective}: no best trial"
        )
    status.update(_figures(headlines[index]), bestTrial=parts[index].number)
    message = (
        f"best of {len(parts)} trials by {objective}: {parts[index].title}: {_summary(headlines[index])}"
    )
    return finish(True, "Backtested", message)


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


def part_number(pod: payloads.Pod) -> int:
    """The trial or slice a backtest pod replays; 1 for a pod without either label (an older
    operator's)."""
    labels = pod["metadata"].get("labels", {})
    return int(labels.get(builders.TRIAL_LABEL) or labels.get(builders.SLICE_LABEL, "1"))


def agents_of(pod: payloads.Pod) -> str | None:
    """The agents' YAML an existing slice (or trial) pod was given, so a slice created later
    (after a restart of the operator between two creates) replays the very same agents, and a
    trial created later the same agents with its own settings."""
    for container in pod.get("spec", {}).get("containers", []):
        for variable in container.get("env", []):
            if variable.get("name") == builders.BACKTEST_AGENTS_ENV and "value" in variable:
                return str(variable["value"])
    return None


def trials_agents(
    spec: backtestrun.BacktestRunSpec, agents: Mapping[str, Mapping[str, Any]]
) -> dict[int, str]:
    """The agents' YAML of each trial of the grid, by trial number (``ValueError`` naming the
    axis when a trial's agents are not valid). Pure."""
    return {
        trial.number: builders.backtest_agents_yaml(builders.trial_agents(agents, trial))
        for trial in spec.trials()
    }


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
        part_number(pod): migrations.read_attempt(pod, container_name=backtestrun.BACKTEST_CONTAINER)
        for pod in pods
    }
    spec = backtestrun.BacktestRunSpec.model_validate(body["spec"])
    agents: dict[str, Mapping[str, Any]] = {}
    missing: list[str] = []
    if not attempts and not migrations.is_finished(body):
        agents, missing = await resolve_agents(api, namespace=namespace, spec=spec)
    given = next(filter(None, map(agents_of, pods)), None)
    agents_yaml = given or builders.backtest_agents_yaml(agents)
    by_trial: dict[int, str] = {}
    invalid_grid: str | None = None
    if spec.grid is not None and not missing and not migrations.is_finished(body):
        # The agents as the run started: resolved now, or as an earlier trial's pod has them.
        base = builders.backtest_agents_of_yaml(given) if given is not None else agents
        try:
            by_trial = trials_agents(spec, base)
        except ValueError as error:
            invalid_grid = str(error)
    decision = decide(run=body, attempts=attempts, missing_agents=missing, now=now, invalid_grid=invalid_grid)
    trials = {trial.number: trial for trial in spec.trials()}
    periods = {period.number: period for period in spec.slices()}
    manifests = [
        builders.build_backtest_pod(
            name=name,
            namespace=namespace,
            spec=spec,
            period=periods[1] if number in trials else periods[number],
            agents_yaml=by_trial[number] if number in trials else agents_yaml,
            settings=settings,
            trial=trials.get(number),
        )
        for number in decision.create
    ]
    await migrations.act_on_pods(
        api, owner=body, create=manifests, kill=decision.kill_pods, delete=decision.delete_pods
    )
    return decision
