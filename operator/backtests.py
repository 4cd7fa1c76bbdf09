"""BacktestRun reconciliation: one bare Pod running ``sapphire backtest``, the headline from it.

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
from sapphire.domain.headline import Headline
from sapphire.operator import builders, kubeapi, migrations, payloads
from sapphire.operator.payloads import Json
from sapphire.operator.settings import OperatorSettings
from sapphire.resources import backtestrun, common, tradingagent

Phase = backtestrun.BacktestRunPhase


@dataclass(frozen=True)
class Decision:
    """What to do now, and the status that follows. ``create_pod``/``delete_pods`` are I/O."""

    status: Json
    create_pod: bool = False
    delete_pods: tuple[str, ...] = ()
    kill_pod: str | None = None
    event: tuple[str, str, str] | None = None


def report_location(name: str, spec: backtestrun.BacktestRunSpec) -> str | None:
    """Where the pod writes the full report, as status.report says it."""
    if spec.report_claim_name is None:
        return None
    return f"persistentVolumeClaim/{spec.report_claim_name}/{name}/report.json"


def _figures(headline: Headline) -> Json:
    return {
        "totalReturn": headline.total_return,
        "sharpe": headline.sharpe,
        "maxDrawdown": headline.max_drawdown,
        "trades": headline.trades,
        "fees": headline.fees,
        "finalEquity": headline.final_equity,
        "quotes": headline.quotes,
        "dataSha256": headline.data_sha256,
    }


def decide(
    *,
    run: payloads.BacktestRun,
    attempt: migrations.Attempt | None,
    missing_agents: Sequence[str],
    now: datetime.datetime,
) -> Decision:
    """The next step of one BacktestRun. Pure: everything it needs is passed in."""
    name = str(run["metadata"]["name"])
    spec = backtestrun.BacktestRunSpec.model_validate(run["spec"])
    status: Json = dict(run.get("status") or {})
    generation = int(run["metadata"].get("generation", 0))
    status["observedGeneration"] = generation
    status["agents"] = [agent.name for agent in spec.agents]

    def conditions(**states: tuple[bool, str, str]) -> list[Json]:
        return common.apply_conditions(
            status.get("conditions") or [], states, observed_generation=generation, now=now
        )

    def finish(succeeded: bool, reason: str, message: str) -> Decision:
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
        return Decision(
            status=status, event=("Normal" if succeeded else "Warning", reason, status["message"])
        )

    if migrations.is_finished(run):
        pods = (attempt.pod_name,) if attempt is not None else ()
        delete = migrations.after_finish(
            status, pods=pods, ttl_seconds=spec.ttl_seconds_after_finished, now=now
        )
        return Decision(status=status, delete_pods=delete)

    if attempt is None:
        if missing_agents:
            message = f"waiting for TradingAgent {', '.join(missing_agents)} in this namespace"
            event = None if status.get("message") == message else ("Warning", "AgentNotFound", message)
            status.update(phase=Phase.PENDING.value, message=message)
            status["conditions"] = conditions(Progressing=(False, "AgentNotFound", message))
            return Decision(status=status, event=event)
        message = f"replaying {spec.data.url} through {len(spec.agents)} agent(s)"
        status.update(
            phase=Phase.RUNNING.value,
            message=config.redact_url(message),
            startedAt=status.get("startedAt") or migrations.iso(now),
            podName=builders.attempt_pod_name(name, 1),
            report=report_location(name, spec),
        )
        status["conditions"] = conditions(Progressing=(True, "Replaying", status["message"]))
        return Decision(
            status=status, create_pod=True, event=("Normal", "BacktestStarted", status["message"])
        )

    status["podName"] = attempt.pod_name
    if not attempt.finished:
        started = attempt.started_at or now
        if (now - started).total_seconds() > spec.active_deadline_seconds:
            decision = finish(
                False,
                "DeadlineExceeded",
                f"the backtest ran longer than activeDeadlineSeconds={spec.active_deadline_seconds}",
            )
            return Decision(status=decision.status, event=decision.event, kill_pod=attempt.pod_name)
        status["phase"] = Phase.RUNNING.value
        if attempt.waiting:
            status["message"] = config.redact_url(f"the backtest pod is waiting: {attempt.waiting}")[
                -migrations.MESSAGE_LIMIT :
            ]
        return Decision(status=status)
    if attempt.deadline_exceeded:
        return finish(False, "DeadlineExceeded", "the backtest pod exceeded its deadline")
    headline = Headline.parse(attempt.message)
    if attempt.exit_code == 0:
        if headline is None or headline.error is not None:
            return finish(False, "NoReport", "the backtest exited 0 without its JSON headline")
        status.update({key: value for key, value in _figures(headline).items() if value is not None})
        summary = (
            f"return {headline.total_return}, sharpe {headline.sharpe or '-'}, "
            f"max drawdown {headline.max_drawdown}, {headline.trades} trades over {headline.quotes} quotes"
        )
        return finish(True, "Backtested", summary)
    failure = (headline.error if headline is not None else None) or attempt.message
    return finish(False, "BacktestFailed", f"exit code {attempt.exit_code}: {failure or 'no message'}")


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
    attempt = (
        migrations.read_attempt(pods[0], container_name=backtestrun.BACKTEST_CONTAINER) if pods else None
    )
    spec = backtestrun.BacktestRunSpec.model_validate(body["spec"])
    agents: dict[str, Mapping[str, Any]] = {}
    missing: list[str] = []
    if attempt is None and not migrations.is_finished(body):
        agents, missing = await resolve_agents(api, namespace=namespace, spec=spec)
    decision = decide(run=body, attempt=attempt, missing_agents=missing, now=now)
    manifest = None
    if decision.create_pod:
        manifest = builders.build_backtest_pod(
            name=name,
            namespace=namespace,
            spec=spec,
            agents_yaml=builders.backtest_agents_yaml(agents),
            settings=settings,
        )
    await migrations.act_on_pods(
        api, owner=body, create=manifest, kill=decision.kill_pod, delete=decision.delete_pods
    )
    return decision
