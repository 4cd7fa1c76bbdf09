"""The pure decision logic of the reconcilers: MigrationRun steps and TradingAgent status."""

from __future__ import annotations

import datetime
import json
from typing import Any, cast

from sapphire.operator import agents, builders, migrations, payloads
from sapphire.operator.settings import OperatorSettings
from sapphire.resources import tradingagent

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)
SETTINGS = OperatorSettings(migration_retry_backoff_seconds=10)


def run(
    name: str = "mr",
    *,
    status: payloads.RunStatus | None = None,
    created: str = "2026-11-27T11:00:00Z",
    **spec: Any,
) -> payloads.MigrationRun:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": created,
        },
        "spec": {
            "revision": "head",
            "database": {"name": "trading", "urlSecretRef": {"name": "db", "key": "url"}},
            **spec,
        },
        "status": status or {},
    }


def attempt(
    number: int, *, exit_code: int | None, message: str = "", seconds_ago: float = 1
) -> migrations.Attempt:
    finished = NOW - datetime.timedelta(seconds=seconds_ago) if exit_code is not None else None
    return migrations.Attempt(
        number=number,
        pod_name=f"mr-{number}",
        uid=f"pod-{number}",
        started_at=NOW - datetime.timedelta(seconds=30),
        exit_code=exit_code,
        finished_at=finished,
        message=message,
    )


def decide(
    body: payloads.MigrationRun, attempts: list[migrations.Attempt], blocker: str | None = None
) -> migrations.Decision:
    return migrations.decide(run=body, attempts=attempts, blocker=blocker, settings=SETTINGS, now=NOW)


REPORT = json.dumps({"from": None, "to": "0001", "applied": ["0001"], "revisions": ["0001"]})


def test_a_new_run_starts_attempt_one() -> None:
    decision = decide(run(), [])
    assert decision.create_attempt == 1
    assert decision.status["phase"] == "Running"
    assert decision.status["startedAt"] == "2026-11-27T12:00:00Z"


def test_a_run_behind_another_on_its_database_is_queued_and_starts_nothing() -> None:
    decision = decide(run(), [], blocker="earlier")
    assert decision.create_attempt is None
    assert decision.status["phase"] == "Queued"
    assert "held by MigrationRun earlier" in decision.status["message"]


def test_the_oldest_unfinished_run_of_a_database_goes_first() -> None:
    older = run("a", created="2026-11-27T10:00:00Z")
    newer = run("b", created="2026-11-27T10:00:05Z")
    other_database = run(
        "c",
        created="2026-11-27T09:00:00Z",
        database={"name": "other", "urlSecretRef": {"name": "x", "key": "y"}},
    )
    runs = [older, newer, other_database]
    assert migrations.blocking_run(newer, runs, {}) == "a"
    assert migrations.blocking_run(older, runs, {}) is None
    assert migrations.blocking_run(older, runs, {"b": 1}) == "b", (
        "a run that already has pods keeps the database"
    )


def test_success_comes_from_the_migration_report() -> None:
    decision = decide(
        run(status={"phase": "Running", "startedAt": "x"}), [attempt(1, exit_code=0, message=REPORT)]
    )
    assert decision.status["phase"] == "Succeeded"
    assert (decision.status["toRevision"], decision.status["revisions"]) == ("0001", ["0001"])
    assert decision.event is not None
    assert decision.event[1] == "Migrated"
    assert decision.create_attempt is None


def test_a_failed_attempt_waits_out_its_backoff_then_retries() -> None:
    body = run(status={"phase": "Running"}, backoffLimit=2)
    waiting = decide(body, [attempt(1, exit_code=1, message="boom", seconds_ago=2)])
    assert waiting.create_attempt is None
    assert "retrying in 8s" in waiting.status["message"]
    assert waiting.event is not None
    assert waiting.event[1] == "AttemptFailed"
    retry = decide(body, [attempt(1, exit_code=1, message="boom", seconds_ago=11)])
    assert retry.create_attempt == 2


def test_the_last_allowed_failure_is_final() -> None:
    decision = decide(
        run(status={"phase": "Running"}, backoffLimit=1),
        [attempt(1, exit_code=1), attempt(2, exit_code=1, message="password=postgresql://u:pw@h/db")],
    )
    assert decision.status["phase"] == "Failed"
    assert "BackoffLimitExceeded" in {c["reason"] for c in decision.status["conditions"]}
    assert "pw@" not in decision.status["message"]


def test_a_run_past_its_deadline_is_failed_and_its_pod_killed() -> None:
    long_ago = migrations.Attempt(1, "mr-1", "p", started_at=NOW - datetime.timedelta(hours=2))
    decision = decide(run(status={"phase": "Running"}, activeDeadlineSeconds=60), [long_ago])
    assert decision.status["phase"] == "Failed"
    assert decision.kill_pod == "mr-1"
    assert decision.event is not None
    assert decision.event[1] == "DeadlineExceeded"


def test_a_finished_run_deletes_its_pods_after_the_ttl() -> None:
    status: payloads.RunStatus = {"phase": "Succeeded", "finishedAt": "2026-11-27T11:59:00Z"}
    early = decide(run(status=status, ttlSecondsAfterFinished=120), [attempt(1, exit_code=0)])
    assert early.delete_pods == ()
    late = decide(run(status=status, ttlSecondsAfterFinished=30), [attempt(1, exit_code=0)])
    assert late.delete_pods == ("mr-1",)
    assert late.status["cleanedUp"] is True


def succeeded(name: str, finished: str, to: str | None, revisions: list[str]) -> payloads.MigrationRun:
    status: payloads.RunStatus = {
        "phase": "Succeeded",
        "finishedAt": finished,
        "toRevision": to,
        "revisions": revisions,
    }
    return {"metadata": {"name": name}, "spec": {"database": {"name": "trading"}}, "status": status}


def test_the_schema_gate_follows_the_latest_succeeded_run_per_database() -> None:
    upgraded = succeeded("up", "2026-11-27T10:00:00Z", "0002", ["0002", "0001"])
    assert agents.schema_gate("0001", [upgraded]).ready
    downgraded = succeeded("down", "2026-11-27T11:00:00Z", None, [])
    assert not agents.schema_gate("0001", [upgraded, downgraded]).ready
    assert agents.schema_gate(None, []).ready


def test_agent_status_from_observations() -> None:
    spec = tradingagent.TradingAgentSpec.model_validate({"role": "momentum"})
    previous = tradingagent.TradingAgentStatus()
    ready_deployment: payloads.Deployment = {
        "metadata": {"name": "a", "generation": 2},
        "status": {"observedGeneration": 2, "readyReplicas": 1, "updatedReplicas": 1},
    }
    gate = agents.SchemaGate(True, "NoSchemaRequired", "")

    def status(
        deployment: payloads.Deployment | None, pods: list[payloads.Pod]
    ) -> tradingagent.TradingAgentStatus:
        observation = agents.AgentObservation(deployment=deployment, pods=pods, schema=gate)
        return agents.agent_status(
            name="a", spec=spec, generation=3, previous=previous, observation=observation, now=NOW
        )

    running = status(ready_deployment, [])
    assert running.phase is tradingagent.TradingAgentPhase.RUNNING
    assert running.symbols_summary == "ALL"
    assert running.observed_generation == 3
    broken_pod: payloads.Pod = {
        "metadata": {"name": "a-0"},
        "status": {
            "containerStatuses": [
                {
                    "name": "agent",
                    "state": {
                        "waiting": {"reason": "CreateContainerConfigError", "message": 'secret "t" not found'}
                    },
                }
            ]
        },
    }
    degraded = status(ready_deployment, [broken_pod])
    assert degraded.phase is tradingagent.TradingAgentPhase.DEGRADED
    assert status(None, []).phase is tradingagent.TradingAgentPhase.PENDING
    event = agents.transition_event(running.phase, tradingagent.TradingAgentPhase.DEGRADED, degraded)
    assert event is not None
    assert event[0] == "Warning"
    assert (
        agents.transition_event(
            running.phase, running.phase or tradingagent.TradingAgentPhase.PENDING, running
        )
        is None
    )


def test_a_deployment_that_cannot_create_its_pod_degrades_the_agent() -> None:
    spec = tradingagent.TradingAgentSpec.model_validate({"role": "strategist"})
    failing: payloads.Deployment = {
        "metadata": {"name": "s", "generation": 1},
        "status": {
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreate",
                    "message": 'serviceaccount "sapphire-vertex" not found',
                }
            ],
        },
    }
    observation = agents.AgentObservation(
        deployment=failing, pods=[], schema=agents.SchemaGate(True, "NoSchemaRequired", "")
    )
    status = agents.agent_status(
        name="s",
        spec=spec,
        generation=1,
        previous=tradingagent.TradingAgentStatus(),
        observation=observation,
        now=NOW,
    )
    assert status.phase is tradingagent.TradingAgentPhase.DEGRADED
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert (ready.reason, ready.message) == ("FailedCreate", 'serviceaccount "sapphire-vertex" not found')


def test_a_container_that_cannot_start_is_reported_in_the_message() -> None:
    pod: payloads.Pod = {
        "metadata": {"name": "mr-1", "uid": "u", "labels": {"trading.sapphire-ai.com/attempt": "1"}},
        "status": {
            "startTime": "2026-11-27T11:59:50Z",
            "initContainerStatuses": [
                {
                    "name": "proxy",
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}},
                }
            ],
            "containerStatuses": [{"name": "migrate", "state": {"waiting": {"reason": "PodInitializing"}}}],
        },
    }
    attempt = migrations.read_attempt(pod)
    decision = decide(run(status={"phase": "Running"}), [attempt])
    assert decision.status["phase"] == "Running"
    assert decision.status["message"] == "attempt 1 is waiting: proxy: ImagePullBackOff: no such image"


def test_an_agent_restarted_by_its_health_is_degraded_with_its_reason_until_ready_again() -> None:
    spec = tradingagent.TradingAgentSpec.model_validate({"role": "momentum"})
    deployment: payloads.Deployment = {
        "metadata": {"name": "agent-m", "generation": 1},
        "status": {"observedGeneration": 1, "updatedReplicas": 1, "readyReplicas": 0},
    }
    words = "agent unhealthy: loop market failing for 121s (14 attempts): ConnectionError: redis down"
    container: payloads.ContainerStatus = {
        "name": "agent",
        "ready": False,
        "restartCount": 2,
        "state": {"running": {"startedAt": "2026-11-27T12:00:00Z"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": words}},
    }
    pod: payloads.Pod = {"metadata": {"name": "agent-m-1"}, "status": {"containerStatuses": [container]}}

    def status_of(deployment: payloads.Deployment) -> tradingagent.TradingAgentStatus:
        observation = agents.AgentObservation(
            deployment=deployment, pods=[pod], schema=agents.SchemaGate(True, "NoSchemaRequired", "")
        )
        return agents.agent_status(
            name="m", spec=spec, generation=1, previous=tradingagent.TradingAgentStatus(),
            observation=observation, now=NOW,
        )  # fmt: skip

    degraded = status_of(deployment)
    assert degraded.phase is tradingagent.TradingAgentPhase.DEGRADED
    ready = next(c for c in degraded.conditions if c.type == "Ready")
    assert ready.reason == "AgentRestarted"
    assert ready.message == f"container agent restarted 2 times; last exit code 1 (Error): {words}"

    container["ready"] = True  # the loops recovered: the readiness probe passes again
    deployment["status"]["readyReplicas"] = 1
    recovered = status_of(deployment)
    assert recovered.phase is tradingagent.TradingAgentPhase.RUNNING


def test_the_observation_digest_changes_exactly_when_the_status_or_the_apply_could() -> None:
    """A child's event is answered without a reconcile when the digest is unchanged, so every
    input of the status must move the digest, and bookkeeping must not."""
    spec = tradingagent.TradingAgentSpec.model_validate({"role": "momentum"})
    gate = agents.SchemaGate(True, "NoSchemaRequired", "")

    def deployment(**status: Any) -> payloads.Deployment:
        annotations = {builders.SPEC_HASH_ANNOTATION: "h1"}
        counters = {"observedGeneration": 1, "updatedReplicas": 1, "readyReplicas": 0, **status}
        return cast(
            payloads.Deployment,
            {
                "metadata": {"name": "agent-a", "uid": "d1", "generation": 1, "annotations": annotations},
                "status": counters,
            },
        )

    def pod(ready: bool, restarts: int = 0, **extra: Any) -> payloads.Pod:
        container: payloads.ContainerStatus = {"name": "agent", "ready": ready, "restartCount": restarts}
        return cast(
            payloads.Pod,
            {"metadata": {"name": "agent-a-1"}, "status": {"containerStatuses": [container], **extra}},
        )

    def seen(found: payloads.Deployment | None, pods: list[payloads.Pod]) -> agents.AgentObservation:
        return agents.AgentObservation(deployment=found, pods=pods, schema=gate)

    def status(observation: agents.AgentObservation) -> str:
        result = agents.agent_status(
            name="a", spec=spec, generation=1, previous=tradingagent.TradingAgentStatus(),
            observation=observation, now=NOW,
        )  # fmt: skip
        return result.model_dump_json()

    base = seen(deployment(), [pod(False)])
    same = [  # a controller's bookkeeping: nothing the status reads
        seen({**deployment(replicas=1, unavailableReplicas=1), "kind": "Deployment"}, [pod(False)]),
        seen(deployment(), [pod(False, podIP="10.0.0.7", phase="Pending")]),
    ]
    moved = [
        seen(None, [pod(False)]),
        seen(deployment(readyReplicas=1), [pod(True)]),
        seen(deployment(observedGeneration=0), [pod(False)]),
        seen(deployment(updatedReplicas=0), [pod(False)]),
        seen(
            deployment(conditions=[{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}]),
            [],
        ),
        seen(deployment(), [pod(False, restarts=1)]),
        agents.AgentObservation(
            deployment=deployment(), pods=[pod(False)], schema=agents.SchemaGate(False, "x", "y")
        ),
    ]
    for other in same:
        assert agents.observation_digest(other) == agents.observation_digest(base)
        assert status(other) == status(base)
    for other in moved:
        assert agents.observation_digest(other) != agents.observation_digest(base), other
    redeployed = deployment()
    redeployed["metadata"] = {**redeployed["metadata"], "generation": 2}  # someone edited it: re-apply
    assert agents.observation_digest(seen(redeployed, [pod(False)])) != agents.observation_digest(base)
