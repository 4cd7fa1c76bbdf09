"""MigrationRun reconciliation: one bare Pod per attempt, results from the migration container.

Why a bare Pod and not a Job: a Job completes only when *all* its containers exit, and the
Cloud SQL proxy sidecar of the seed never did, so migrations hung forever. Here the result
is read from the ``migrate`` container's own terminated state; sidecars are ignored, and
the pod is deleted once the result is recorded (after ``ttlSecondsAfterFinished``).

Why it never runs twice: the truth is the set of pods labelled with the run, not the status.
Attempt N's pod has the deterministic name ``<run>-<N>``, so an operator that restarts at
any moment finds the attempt in progress instead of starting it again, and a duplicate
create fails with AlreadyExists. A pod is deleted only after the run is final.

At most one run per database runs at a time: among the unfinished runs of one database
(``spec.database.name``), one that has pods goes on, otherwise the oldest starts; the rest
wait in ``Queued``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from sapphire import config
from sapphire.migrations.report import MigrationReport
from sapphire.operator import builders, kubeapi, payloads
from sapphire.operator.agents import adopt
from sapphire.operator.payloads import Json
from sapphire.operator.settings import OperatorSettings
from sapphire.resources import common, migrationrun

Phase = migrationrun.MigrationRunPhase
MAX_BACKOFF_SECONDS = 300.0
MESSAGE_LIMIT = 4000


def parse_time(value: object) -> datetime.datetime | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass(frozen=True)
class Attempt:
    """One migration pod, reduced to what decides the run."""

    number: int
    pod_name: str
    uid: str
    started_at: datetime.datetime | None
    exit_code: int | None = None
    finished_at: datetime.datetime | None = None
    message: str = ""
    deadline_exceeded: bool = False
    waiting: str = ""
    """Why a container of the attempt cannot start yet (a sidecar's image, a missing Secret)."""

    @property
    def finished(self) -> bool:
        return self.exit_code is not None or self.deadline_exceeded


def read_attempt(pod: payloads.Pod, container_name: str = migrationrun.MIGRATION_CONTAINER) -> Attempt:
    """The state of ``container_name`` (the migration, or a backtest) in one pod; the sidecars'
    states do not matter."""
    metadata, status = pod["metadata"], pod.get("status") or {}
    number = int(metadata.get("labels", {}).get(builders.ATTEMPT_LABEL, "0"))
    started = parse_time(status.get("startTime")) or parse_time(metadata.get("creationTimestamp"))
    deadline = status.get("reason") == "DeadlineExceeded"
    for container in status.get("containerStatuses") or []:
        if container.get("name") != container_name:
            continue
        terminated = container.get("state", {}).get("terminated")
        if terminated:
            return Attempt(
                number=number,
                pod_name=metadata["name"],
                uid=metadata["uid"],
                started_at=started,
                exit_code=int(terminated.get("exitCode", 1)),
                finished_at=parse_time(terminated.get("finishedAt")),
                message=str(terminated.get("message") or ""),
                deadline_exceeded=deadline,
            )
    waiting = ""
    statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    for container in statuses:
        state = container.get("state", {}).get("waiting") or {}
        if state.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
            waiting = f"{container.get('name')}: {state['reason']}: {state.get('message', '')}".rstrip(": ")
            break
    return Attempt(
        number, metadata["name"], metadata["uid"], started, deadline_exceeded=deadline, waiting=waiting
    )


@dataclass(frozen=True)
class Decision:
    """What to do now, and the status that follows. ``create_attempt``/``delete_pods`` are I/O."""

    status: Json
    create_attempt: int | None = None
    delete_pods: tuple[str, ...] = ()
    kill_pod: str | None = None
    event: tuple[str, str, str] | None = None


def is_finished(run: payloads.MigrationRun | payloads.BacktestRun) -> bool:
    """Whether ``run``'s recorded phase is final: Succeeded or Failed (``common.FINAL_RUN_PHASES``,
    what ``MigrationRunPhase.is_final`` and ``BacktestRunPhase.is_final`` say of a typed phase)."""
    return (run.get("status") or {}).get("phase") in common.FINAL_RUN_PHASES


def _ordering(run: payloads.MigrationRun) -> tuple[str, str]:
    return str(run["metadata"].get("creationTimestamp", "")), str(run["metadata"]["name"])


def blocking_run(
    run: payloads.MigrationRun, others: Sequence[payloads.MigrationRun], pods_by_run: dict[str, int]
) -> str | None:
    """The name of the run that holds (or comes before this one on) the same database."""
    database = run["spec"]["database"]["name"]
    me = _ordering(run)
    for other in sorted(others, key=_ordering):
        if other["metadata"]["name"] == run["metadata"]["name"]:
            continue
        if other.get("spec", {}).get("database", {}).get("name") != database:
            continue
        if is_finished(other):
            continue
        if (
            (other.get("status") or {}).get("phase") == Phase.RUNNING
            or pods_by_run.get(other["metadata"]["name"], 0)
            or _ordering(other) < me
        ):
            return str(other["metadata"]["name"])
    return None


def _condition_updates(
    status: Json, *, generation: int, now: datetime.datetime, **states: tuple[bool, str, str]
) -> list[Json]:
    return common.apply_conditions(
        status.get("conditions") or [], states, observed_generation=generation, now=now
    )


def iso(moment: datetime.datetime | None) -> str | None:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def after_finish(
    status: Json, *, pods: tuple[str, ...], ttl_seconds: int, now: datetime.datetime
) -> tuple[str, ...]:
    """What a finished run still does: keep its pods ``ttl_seconds`` after ``finishedAt`` so
    their logs can be read, then delete them (the periodic resync comes back to look). Returns
    the pods to delete now; sets ``cleanedUp`` in ``status`` once no pod is left to delete."""
    finished = parse_time(status.get("finishedAt")) or now
    remaining = (finished - now).total_seconds() + ttl_seconds
    if not pods:
        status["cleanedUp"] = True
        return ()
    if remaining <= 0:
        status["cleanedUp"] = True
        return pods
    return ()


def decide(
    *,
    run: payloads.MigrationRun,
    attempts: Sequence[Attempt],
    blocker: str | None,
    settings: OperatorSettings,
    now: datetime.datetime,
) -> Decision:
    """The next step of one MigrationRun. Pure: everything it needs is passed in."""
    spec = migrationrun.MigrationRunSpec.model_validate(run["spec"])
    status: Json = dict(run.get("status") or {})
    generation = int(run["metadata"].get("generation", 0))
    previous_phase = status.get("phase")
    status["observedGeneration"] = generation
    latest = max(attempts, key=lambda a: a.number) if attempts else None
    pods = tuple(sorted(a.pod_name for a in attempts))

    def finish(phase: Phase, reason: str, message: str, report: MigrationReport | None = None) -> Decision:
        status.update(phase=phase.value, message=config.redact_url(message)[-MESSAGE_LIMIT:])
        status["finishedAt"] = status.get("finishedAt") or iso(now)
        if report is not None:
            status.update(
                fromRevision=report.from_revision, toRevision=report.to_revision, revisions=report.revisions
            )
        succeeded = phase is Phase.SUCCEEDED
        status["conditions"] = _condition_updates(
            status, generation=generation, now=now,
            Complete=(succeeded, reason, message if succeeded else "the run failed"),
            Failed=(not succeeded, reason, message if not succeeded else "the run succeeded"),
            Progressing=(False, reason, "the run is finished"),
        )  # fmt: skip
        kind = "Normal" if succeeded else "Warning"
        return Decision(status=status, event=(kind, reason, status["message"]))

    if is_finished(run):
        delete = after_finish(status, pods=pods, ttl_seconds=spec.ttl_seconds_after_finished, now=now)
        return Decision(status=status, delete_pods=delete)

    if latest is None:
        if blocker is not None:
            message = f"database {spec.database.name} is held by MigrationRun {blocker}"
            status.update(phase=Phase.QUEUED.value, message=message, attempts=0)
            status["conditions"] = _condition_updates(
                status, generation=generation, now=now, Progressing=(False, "WaitingForDatabase", message)
            )
            event = None if previous_phase == Phase.QUEUED else ("Normal", "Queued", message)
            return Decision(status=status, event=event)
        return _start(status, spec, attempt=1, generation=generation, now=now, first=True)

    status["attempts"] = latest.number
    status["podName"] = latest.pod_name
    if not latest.finished:
        started = latest.started_at or now
        if (now - started).total_seconds() > spec.active_deadline_seconds:
            decision = finish(
                Phase.FAILED,
                "DeadlineExceeded",
                f"attempt {latest.number} ran longer than "
                f"activeDeadlineSeconds={spec.active_deadline_seconds}",
            )
            return Decision(status=decision.status, event=decision.event, kill_pod=latest.pod_name)
        status["phase"] = Phase.RUNNING.value
        if latest.waiting:
            status["message"] = config.redact_url(f"attempt {latest.number} is waiting: {latest.waiting}")[
                -MESSAGE_LIMIT:
            ]
        return Decision(status=status)
    if latest.deadline_exceeded:
        return finish(Phase.FAILED, "DeadlineExceeded", f"attempt {latest.number} exceeded its deadline")
    report = MigrationReport.parse(latest.message)
    if latest.exit_code == 0:
        if report is None:
            return finish(Phase.FAILED, "NoReport", "the migration exited 0 without its JSON report")
        applied = ", ".join(report.applied) or "nothing (already there)"
        moved = f"{report.from_revision or 'base'} -> {report.to_revision or 'base'}"
        message = f"{spec.direction.value} {moved}; applied {applied}"
        return finish(Phase.SUCCEEDED, "Migrated", message, report)
    failure = (
        report.error if report is not None and report.error else latest.message
    ) or f"exit code {latest.exit_code}"
    if latest.number > spec.backoff_limit:
        return finish(
            Phase.FAILED,
            "BackoffLimitExceeded",
            f"attempt {latest.number} of {spec.backoff_limit + 1} failed "
            f"(exit code {latest.exit_code}): {failure}",
        )
    delay = min(settings.migration_retry_backoff_seconds * 2 ** (latest.number - 1), MAX_BACKOFF_SECONDS)
    wait = ((latest.finished_at or now) - now).total_seconds() + delay
    headline = f"attempt {latest.number} failed (exit code {latest.exit_code})"
    already_reported = str((run.get("status") or {}).get("message", "")).startswith(headline)
    if wait > 0:
        message = f"{headline}; retrying in {wait:.0f}s: {failure}"
        status.update(phase=Phase.RUNNING.value, message=config.redact_url(message)[-MESSAGE_LIMIT:])
        event = None if already_reported else ("Warning", "AttemptFailed", status["message"])
        return Decision(status=status, event=event)
    decision = _start(status, spec, attempt=latest.number + 1, generation=generation, now=now, first=False)
    if already_reported:
        return decision
    # The failure went unseen while its backoff ran out: report it with the retry.
    failed = config.redact_url(f"{headline}: {failure}; starting attempt {latest.number + 1}")[
        -MESSAGE_LIMIT:
    ]
    return Decision(
        status=decision.status,
        create_attempt=decision.create_attempt,
        event=("Warning", "AttemptFailed", failed),
    )


def _start(
    status: Json,
    spec: migrationrun.MigrationRunSpec,
    *,
    attempt: int,
    generation: int,
    now: datetime.datetime,
    first: bool,
) -> Decision:
    message = f"attempt {attempt}: {spec.direction.value} database {spec.database.name} to {spec.revision}"
    status.update(phase=Phase.RUNNING.value, attempts=attempt, message=message)
    if first:
        status["startedAt"] = status.get("startedAt") or iso(now)
    status["conditions"] = _condition_updates(
        status, generation=generation, now=now, Progressing=(True, "Migrating", message)
    )
    return Decision(status=status, create_attempt=attempt, event=("Normal", "AttemptStarted", message))


async def owned_pods(
    api: kubeapi.KubeApi, body: payloads.MigrationRun | payloads.BacktestRun, *, label: str
) -> list[payloads.Pod]:
    """The pods labelled ``label=<name of body>`` that ``body`` owns (a run deleted and created
    again under the same name owns none of its predecessor's)."""
    metadata = body["metadata"]
    pods_path = kubeapi.namespaced("v1", str(metadata["namespace"]), "pods")
    return [
        pod
        for pod in await api.list(pods_path, payloads.Pod, labels={label: str(metadata["name"])})
        if any(ref.get("uid") == metadata["uid"] for ref in pod["metadata"].get("ownerReferences", []))
    ]


async def act_on_pods(
    api: kubeapi.KubeApi,
    *,
    owner: payloads.MigrationRun | payloads.BacktestRun,
    create: Sequence[Json] = (),
    kill: Sequence[str] = (),
    delete: Sequence[str] = (),
) -> None:
    """The I/O a run's decision asks for, in its namespace: create the pods ``create`` (owned
    by ``owner``) unless a previous reconcile already did, stop ``kill`` (5 s of grace), delete
    ``delete``. Idempotent: a pod's deterministic name makes a second create AlreadyExists."""
    pods_path = kubeapi.namespaced("v1", str(owner["metadata"]["namespace"]), "pods")
    for manifest in create:
        adopt(manifest, owner=owner)
        try:
            await api.create(pods_path, manifest)
        except kubeapi.KubeApiError as error:
            if error.status != 409:  # AlreadyExists: a previous reconcile created this very pod
                raise
    for pod_name in kill:
        await api.delete(f"{pods_path}/{pod_name}", grace_seconds=5)
    for pod_name in delete:
        await api.delete(f"{pods_path}/{pod_name}")


async def reconcile(
    api: kubeapi.KubeApi,
    *,
    body: payloads.MigrationRun,
    settings: OperatorSettings,
    now: datetime.datetime,
) -> Decision:
    """Observe, decide, act. Safe to run concurrently with itself and after any crash."""
    metadata = body["metadata"]
    name, namespace = str(metadata["name"]), str(metadata["namespace"])
    pods_path = kubeapi.namespaced("v1", namespace, "pods")
    pods = await owned_pods(api, body, label=builders.MIGRATION_LABEL)
    attempts = [read_attempt(pod) for pod in pods]
    blocker = None
    if not attempts and not is_finished(body):
        runs = await api.list(
            kubeapi.namespaced(migrationrun.API_VERSION, namespace, migrationrun.PLURAL),
            payloads.MigrationRun,
        )
        holders: dict[str, int] = {}
        for pod in await api.list(
            pods_path, payloads.Pod, labels={builders.DATABASE_LABEL: body["spec"]["database"]["name"]}
        ):
            holder = pod["metadata"]["labels"].get(builders.MIGRATION_LABEL, "")
            holders[holder] = holders.get(holder, 0) + 1
        blocker = blocking_run(body, runs, holders)
    decision = decide(run=body, attempts=attempts, blocker=blocker, settings=settings, now=now)
    manifest = None
    if decision.create_attempt is not None:
        spec = migrationrun.MigrationRunSpec.model_validate(body["spec"])
        manifest = builders.build_migration_pod(
            name=name, namespace=namespace, spec=spec, attempt=decision.create_attempt, settings=settings
        )
        decision.status["podName"] = manifest["metadata"]["name"]
    await act_on_pods(
        api,
        owner=body,
        create=() if manifest is None else (manifest,),
        kill=() if decision.kill_pod is None else (decision.kill_pod,),
        delete=decision.delete_pods,
    )
    return decision
