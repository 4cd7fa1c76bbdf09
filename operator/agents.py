"""TradingAgent reconciliation: converge the agent's Deployment, then report its status.

The reconcile is level-triggered and idempotent: it computes the desired Deployment from the
spec alone and server-side-applies it, so a Deployment someone edited or deleted comes back
the next time any trigger fires (the TradingAgent's own events, a timer, or an event of the
Deployment or its pods). The status is a pure function of what was observed
(:func:`agent_status`), which keeps the decision logic testable without a cluster.
"""

from __future__ import annotations

import datetime
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import kopf

from sapphire.operator import builders, kubeapi, payloads, specs
from sapphire.operator.payloads import Json
from sapphire.operator.settings import OperatorSettings
from sapphire.resources import common, migrationrun, tradingagent

Phase = tradingagent.TradingAgentPhase
Condition = tradingagent.TradingAgentConditionType

# Container states that will not fix themselves without a change somewhere else.
BROKEN_WAITING_REASONS = frozenset(
    {
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ContainerCannotRun",
    }
)


@dataclass(frozen=True)
class SchemaGate:
    """Whether the agent's ``requiresSchema`` revision is in its database."""

    ready: bool
    reason: str
    message: str


@dataclass(frozen=True)
class AgentObservation:
    """What the operator saw of one agent's world."""

    deployment: payloads.Deployment | None
    pods: Sequence[payloads.Pod]
    schema: SchemaGate


def schema_gate(required: str | None, runs: Sequence[payloads.MigrationRun]) -> SchemaGate:
    """Is ``required`` applied, according to the latest Succeeded MigrationRun per database?

    A revision counts when it is the run's ``toRevision`` or in its ``revisions`` (the
    lineage the migration reported), so a database migrated past the revision still counts,
    and one downgraded below it no longer does.
    """
    if required is None:
        return SchemaGate(True, "NoSchemaRequired", "the agent requires no schema revision")
    latest: dict[str, payloads.MigrationRun] = {}
    for run in runs:
        status = run.get("status") or {}
        if status.get("phase") != migrationrun.MigrationRunPhase.SUCCEEDED:
            continue
        database = str(run.get("spec", {}).get("database", {}).get("name", ""))
        if database not in latest or str(status.get("finishedAt", "")) > str(
            latest[database]["status"].get("finishedAt", "")
        ):
            latest[database] = run
    for database, run in sorted(latest.items()):
        status = run["status"]
        if required == status.get("toRevision") or required in (status.get("revisions") or []):
            return SchemaGate(
                True,
                "SchemaApplied",
                f"revision {required} is applied to database {database} "
                f"(MigrationRun {run['metadata']['name']})",
            )
    return SchemaGate(
        False,
        "WaitingForMigration",
        f"waiting for a Succeeded MigrationRun that applies revision {required}",
    )


def _deployment_problem(deployment: payloads.Deployment | None) -> tuple[str, str] | None:
    """A Deployment that cannot make its pods (a missing ServiceAccount, a quota, a refused
    pod spec) or gave up rolling out says so in its conditions; nothing else would."""
    status: payloads.DeploymentStatus = deployment.get("status", {}) if deployment is not None else {}
    for condition in status.get("conditions") or []:
        failing = condition["type"] == "ReplicaFailure" and condition["status"] == "True"
        stuck = condition["type"] == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded"
        if failing or stuck:
            return str(condition.get("reason") or condition["type"]), str(condition.get("message") or "")
    return None


def _last_words(container: payloads.ContainerStatus) -> str:
    """How the container's previous run ended: exit code and termination message."""
    terminated = (container.get("lastState") or {}).get("terminated") or {}
    if not terminated:
        return ""
    message = str(terminated.get("message") or "").strip().splitlines()
    said = f": {message[-1][:400]}" if message else ""
    return f"; last exit code {terminated.get('exitCode')} ({terminated.get('reason') or 'Error'}){said}"


def _waiting_problem(pods: Sequence[payloads.Pod]) -> tuple[str, str] | None:
    """A container that cannot start, or that was restarted and is not ready again: the
    agent's own reason (its termination message, e.g. which loop kept failing) included."""
    for pod in pods:
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        for container in pod.get("status", {}).get("containerStatuses") or []:
            waiting = container.get("state", {}).get("waiting") or {}
            restarts = int(container.get("restartCount") or 0)
            if waiting.get("reason") in BROKEN_WAITING_REASONS:
                message = str(waiting.get("message") or waiting["reason"])
                return str(waiting["reason"]), message + _last_words(container)
            if restarts and not container.get("ready"):
                name = container.get("name", "agent")
                return (
                    "AgentRestarted",
                    f"container {name} restarted {restarts} times{_last_words(container)}",
                )
    return None


@dataclass(frozen=True)
class StatusInputs:
    """What of an observation the agent's status is computed from, and nothing else."""

    deployed: bool
    ready_replicas: int
    rolled_out: bool
    """The Deployment has seen its current generation and updated a replica to it."""
    problem: tuple[str, str] | None
    """(reason, message) of a Deployment or container that cannot run."""
    schema: SchemaGate


def status_inputs(observation: AgentObservation) -> StatusInputs:
    deployment = observation.deployment
    deployment_status: payloads.DeploymentStatus = (
        deployment.get("status", {}) if deployment is not None else {}
    )
    rolled_out = deployment is not None and (
        int(deployment_status.get("observedGeneration") or 0)
        >= int(deployment["metadata"].get("generation", 0))
        and int(deployment_status.get("updatedReplicas") or 0) >= 1
    )
    return StatusInputs(
        deployed=deployment is not None,
        ready_replicas=int(deployment_status.get("readyReplicas") or 0),
        rolled_out=rolled_out,
        problem=_deployment_problem(deployment) or _waiting_problem(observation.pods),
        schema=observation.schema,
    )


def agent_status(
    *,
    name: str,
    spec: tradingagent.TradingAgentSpec,
    generation: int,
    previous: tradingagent.TradingAgentStatus,
    observation: AgentObservation,
    now: datetime.datetime,
) -> tradingagent.TradingAgentStatus:
    """The status an agent should have, given what was observed. Pure."""
    inputs = status_inputs(observation)
    ready_replicas, problem = inputs.ready_replicas, inputs.problem
    phase: Phase
    ready: tuple[bool, str, str]
    progressing: tuple[bool, str, str]
    schema = inputs.schema
    if not schema.ready:
        phase = Phase.WAITING_FOR_SCHEMA
        ready = (False, "WaitingForSchema", schema.message)
        progressing = (False, "WaitingForSchema", schema.message)
    elif spec.paused:
        phase = Phase.PAUSED
        ready = (False, "Paused", "spec.paused is true: scaled to zero")
        progressing = (False, "Paused", "spec.paused is true")
    elif problem is not None:
        phase = Phase.DEGRADED
        ready = (False, problem[0], problem[1])
        progressing = (True, problem[0], "waiting for the agent's container to start")
    elif not inputs.deployed:
        phase = Phase.PENDING
        ready = (
            False,
            "DeploymentMissing",
            f"Deployment {builders.agent_deployment_name(name)} does not exist yet",
        )
        progressing = (True, "Creating", "creating the agent's Deployment")
    elif ready_replicas >= 1 and inputs.rolled_out:
        phase = Phase.RUNNING
        ready = (True, "AgentReady", "the agent's pod is running and ready")
        progressing = (False, "RolledOut", "the Deployment has rolled out the current spec")
    else:
        phase = Phase.STARTING
        ready = (False, "AgentStarting", "waiting for the agent's pod to become ready")
        progressing = (True, "RollingOut", "the Deployment is rolling out the current spec")

    # A spec that was invalid and now is not: the InvalidSpec condition goes with the problem.
    conditions = [c for c in previous.conditions if c.type != Condition.INVALID_SPEC.value]
    for kind, (value, reason, message) in (
        (Condition.READY, ready),
        (Condition.PROGRESSING, progressing),
        (
            Condition.SCHEMA_READY,
            (schema.ready, schema.reason, schema.message),
        ),
    ):
        conditions = common.set_condition(
            conditions,
            type=kind.value,
            status=common.ConditionStatus.TRUE if value else common.ConditionStatus.FALSE,
            reason=reason,
            message=message,
            observed_generation=generation,
            now=now,
        )
    return previous.model_copy(
        update={
            "phase": phase,
            "observed_generation": generation,
            "conditions": conditions,
            "ready_replicas": ready_replicas,
            "deployment": builders.agent_deployment_name(name),
            "symbols_summary": spec.symbols_summary(),
        }
    )


def invalid_status(
    *,
    previous: tradingagent.TradingAgentStatus,
    generation: int,
    error: specs.InvalidSpecError,
    now: datetime.datetime,
) -> tradingagent.TradingAgentStatus:
    """The status of an agent whose admitted spec this operator cannot use. Pure.

    The Deployment (if any) is left as it is: a running agent keeps its last good spec rather
    than being stopped because a newer field arrived before a newer operator."""
    message = f"the operator cannot use this spec: {error}"
    conditions = list(previous.conditions)
    for kind, value in (
        (Condition.INVALID_SPEC, True),
        (Condition.READY, False),
        (Condition.PROGRESSING, False),
    ):
        conditions = common.set_condition(
            conditions,
            type=kind.value,
            status=common.ConditionStatus.TRUE if value else common.ConditionStatus.FALSE,
            reason="InvalidSpec",
            message=message,
            observed_generation=generation,
            now=now,
        )
    return previous.model_copy(
        update={"phase": Phase.INVALID_SPEC, "observed_generation": generation, "conditions": conditions}
    )


def is_known_invalid(body: payloads.TradingAgent) -> bool:
    """Whether ``body``'s current generation was already found invalid: nothing to retry."""
    status = body.get("status") or {}
    return status.get("phase") == Phase.INVALID_SPEC.value and status.get("observedGeneration") == body[
        "metadata"
    ].get("generation")


def transition_event(
    previous: Phase | None, current: Phase, status: tradingagent.TradingAgentStatus
) -> tuple[str, str, str] | None:
    """(type, reason, message) of the Event to post when the phase changed, else None."""
    if previous == current:
        return None
    ready = common.find_condition(status.conditions, Condition.READY.value)
    detail = f": {ready.message}" if ready is not None and ready.message else ""
    kind = "Warning" if current in (Phase.DEGRADED, Phase.FAILED) else "Normal"
    return kind, current.value, f"phase {previous.value if previous else 'none'} -> {current.value}{detail}"


async def observe(
    api: kubeapi.KubeApi, *, name: str, namespace: str, required_schema: str | None
) -> AgentObservation:
    deployment = await api.get(
        kubeapi.namespaced("apps/v1", namespace, "deployments", builders.agent_deployment_name(name)),
        payloads.Deployment,
    )
    pods = await api.list(
        kubeapi.namespaced("v1", namespace, "pods"), payloads.Pod, labels={builders.AGENT_LABEL: name}
    )
    runs: list[payloads.MigrationRun] = []
    if required_schema is not None:
        runs = await api.list(
            kubeapi.namespaced(migrationrun.API_VERSION, namespace, migrationrun.PLURAL),
            payloads.MigrationRun,
        )
    return AgentObservation(deployment=deployment, pods=pods, schema=schema_gate(required_schema, runs))


def observe_indexed(
    indexes: AgentIndexes, *, name: str, namespace: str, required_schema: str | None
) -> AgentObservation:
    """:func:`observe` from kopf's indexes, which kopf's watches keep current: no request.

    kopf updates an index before it runs the handlers of the same event, so the reconcile a
    Deployment's or pod's event triggers sees that event's object."""
    deployment = next(iter(indexes.deployments.get((namespace, name), [])), None)
    pods = list(indexes.pods.get((namespace, name), []))
    runs = list(indexes.runs.get(namespace, [])) if required_schema is not None else []
    return AgentObservation(deployment=deployment, pods=pods, schema=schema_gate(required_schema, runs))


@dataclass(frozen=True)
class AgentIndexes:
    """kopf indexes of the agents' children and of the MigrationRuns (see ``handlers``)."""

    agents: Mapping[tuple[str, str], Iterable[payloads.TradingAgent]]
    deployments: Mapping[tuple[str, str], Iterable[payloads.Deployment]]
    pods: Mapping[tuple[str, str], Iterable[payloads.Pod]]
    runs: Mapping[str, Iterable[payloads.MigrationRun]]


@dataclass(frozen=True)
class Applied:
    """What the operator last applied to an agent's Deployment: the desired spec's hash, and
    the Deployment's uid and generation in the answer. The same three on the Deployment now
    mean nobody has changed or replaced it since (any edit of its spec bumps the generation)."""

    spec_hash: str
    uid: str
    generation: int

    @classmethod
    def of(cls, deployment: payloads.Deployment) -> Applied:
        metadata = deployment["metadata"]
        return cls(
            spec_hash=str((metadata.get("annotations") or {}).get(builders.SPEC_HASH_ANNOTATION, "")),
            uid=str(metadata.get("uid", "")),
            generation=int(metadata.get("generation", 0)),
        )


@dataclass(frozen=True)
class Convergence:
    status: tradingagent.TradingAgentStatus
    event: tuple[str, str, str] | None
    applied: Applied
    observation: AgentObservation
    """What the status was computed from (with the Deployment as applied, if it was)."""


def observation_digest(observation: AgentObservation) -> Hashable:
    """What of ``observation`` :func:`agent_status` (its :func:`status_inputs`) and
    :func:`converge` (the Deployment's identity, :class:`Applied`) read. Two observations with
    one digest give one status and no apply, so an event that leaves the digest as it was (a
    controller's bookkeeping, a resourceVersion bump, a pod's IP) needs no reconcile."""
    deployment = observation.deployment
    applied = Applied.of(deployment) if deployment is not None else None
    return (applied, status_inputs(observation))


async def converge(
    api: kubeapi.KubeApi,
    *,
    body: payloads.TradingAgent,
    spec: tradingagent.TradingAgentSpec,
    settings: OperatorSettings,
    observation: AgentObservation,
    applied: Applied | None,
    now: datetime.datetime,
) -> Convergence:
    """Apply the agent's desired Deployment unless ``applied`` shows it is already there, and
    compute the new status and transition Event.

    ``spec`` is ``body``'s spec as :func:`specs.read_spec` read it; ``observation`` is what
    :func:`observe` or :func:`observe_indexed` saw."""
    metadata = body["metadata"]
    name, namespace = str(metadata["name"]), str(metadata["namespace"])
    previous = tradingagent.TradingAgentStatus.model_validate(body.get("status") or {})
    desired = builders.build_agent_deployment(
        name=name, namespace=namespace, spec=spec, settings=settings, schema_ready=observation.schema.ready
    )
    deployment = observation.deployment
    wanted = desired["metadata"]["annotations"][builders.SPEC_HASH_ANNOTATION]
    if (
        deployment is None
        or applied is None
        or Applied.of(deployment) != applied
        or applied.spec_hash != wanted
    ):
        adopt(desired, owner=body)
        deployment = await api.apply(
            kubeapi.namespaced("apps/v1", namespace, "deployments", desired["metadata"]["name"]),
            desired,
            payloads.Deployment,
        )
    seen = AgentObservation(deployment=deployment, pods=observation.pods, schema=observation.schema)
    status = agent_status(
        name=name,
        spec=spec,
        generation=int(metadata.get("generation", 0)),
        previous=previous,
        observation=seen,
        now=now,
    )
    event = transition_event(previous.phase, status.phase or Phase.PENDING, status)
    return Convergence(status=status, event=event, applied=Applied.of(deployment), observation=seen)


def adopt(child: Json, *, owner: payloads.Resource) -> None:
    """Make ``owner``'s deletion garbage-collect ``child`` (no finalizer needed): kopf's own
    controller owner reference, with blockOwnerDeletion."""
    kopf.append_owner_reference(child, owner=kopf.Body(cast(kopf.RawBody, owner)))
