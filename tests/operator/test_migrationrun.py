"""MigrationRuns migrate a real Postgres through pods on the process node, and can neither
deadlock nor run twice; TradingAgents wait for the schema they need."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import yaml

from sapphire.migrations import config as migration_config
from sapphire.migrations import lock
from tests.operator.conftest import AGENT_TOKEN_SECRET
from tests.support import kube, processes, services
from tests.support import operator as operator_support

pytestmark = pytest.mark.k8s

StartOperator = Callable[..., operator_support.OperatorProcess]
GROUP_PATH = "/apis/trading.sapphire-ai.com/v1alpha1"
NEVER_EXITS = [sys.executable, "-c", "import time; time.sleep(3600)"]


def run(name: str, *, database: str = "trading", secret: str = "db", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "trading.sapphire-ai.com/v1alpha1",
        "kind": "MigrationRun",
        "metadata": {"name": name},
        "spec": {
            "revision": "head",
            "database": {"name": database, "urlSecretRef": {"name": secret, "key": "url"}},
            "ttlSecondsAfterFinished": 0,
            **spec,
        },
    }


def run_path(namespace: str, name: str) -> str:
    return f"{GROUP_PATH}/namespaces/{namespace}/migrationruns/{name}"


phase_in = operator_support.phase_in


def pods_of(control_plane: kube.ControlPlane, namespace: str, run_name: str) -> list[str]:
    selector = f"trading.sapphire-ai.com/migrationrun={run_name}"
    return control_plane.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "name").stdout.split()


def tables(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema='public'"
        )
        return {str(row[0]) for row in rows}


def wait_for_lock_waiter(database_url: str) -> None:
    """Until a migration pod waits for the migration lock the test holds (pg_locks says so)."""
    processes.wait_until(
        lambda: len(services.advisory_lock_backends(database_url, lock.LOCK_KEY, granted=False)) == 1,
        timeout=60,
        what="the migration pod to wait for the migration lock",
    )


@pytest.fixture
def database_secret(control_plane: kube.ControlPlane, namespace: str, database_url: str) -> str:
    control_plane.kubectl(
        "create", "secret", "generic", "db", f"--from-literal=url={database_url}", "-n", namespace
    )
    return database_url


@pytest.fixture
def held_migration_lock(database_url: str) -> Iterator[Callable[[], None]]:
    """Holds the migration advisory lock, as a manual ``alembic upgrade`` from a laptop would."""
    connection = psycopg.connect(database_url, autocommit=True)
    connection.execute("SELECT pg_advisory_lock(%s)", (lock.LOCK_KEY,))

    def release() -> None:
        if not connection.closed:
            connection.execute("SELECT pg_advisory_unlock(%s)", (lock.LOCK_KEY,))
            connection.close()

    yield release
    release()


def test_a_run_to_head_creates_the_tables_and_reports_its_revisions(
    control_plane: kube.ControlPlane, namespace: str, start_operator: StartOperator, database_secret: str
) -> None:
    start_operator()
    kube.apply(control_plane, run("to-head"), namespace)
    body = kube.wait_for(
        control_plane, run_path(namespace, "to-head"), phase_in("Succeeded", "Failed"), timeout=90
    )
    status = body["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    head = migration_config.head()
    assert (status.get("fromRevision"), status["toRevision"], status["attempts"]) == (None, head, 1)
    assert status["revisions"][0] == head
    assert {"orders", "fills", "alembic_version"} <= tables(database_secret)
    assert "hunter" not in str(status)
    kube.wait_for(
        control_plane,
        run_path(namespace, "to-head"),
        lambda b: b["status"].get("cleanedUp") is True,
        timeout=30,
    )
    assert pods_of(control_plane, namespace, "to-head") == []
    table = control_plane.kubectl("get", "mr", "-n", namespace).stdout
    assert table.splitlines()[0].split() == ["NAME", "TARGET", "PHASE", "FROM", "TO", "ATTEMPTS", "AGE"]


def test_a_sidecar_that_never_exits_cannot_hang_the_run(
    control_plane: kube.ControlPlane, namespace: str, start_operator: StartOperator, database_secret: str
) -> None:
    """The seed's deadlock, as a regression test: its proxy sidecar never exited."""
    start_operator()
    proxy = {"name": "cloud-sql-proxy", "image": "proxy", "command": NEVER_EXITS}
    kube.apply(control_plane, run("with-proxy", sidecars=[proxy]), namespace)
    body = kube.wait_for(
        control_plane, run_path(namespace, "with-proxy"), phase_in("Succeeded", "Failed"), timeout=90
    )
    assert body["status"]["phase"] == "Succeeded", body["status"].get("message")
    kube.wait_for(
        control_plane,
        f"/api/v1/namespaces/{namespace}/pods",
        lambda listing: not listing["items"],
        timeout=60,
        what="the migration pod (and its sidecar) to be deleted",
    )


def test_a_failing_migration_is_retried_then_failed_with_the_error(
    control_plane: kube.ControlPlane, namespace: str, start_operator: StartOperator
) -> None:
    start_operator()
    bad_url = "postgresql://sapphire:hunter2-secret@127.0.0.1:1/nowhere"
    control_plane.kubectl(
        "create", "secret", "generic", "bad", f"--from-literal=url={bad_url}", "-n", namespace
    )
    kube.apply(
        control_plane, run("doomed", secret="bad", backoffLimit=1, ttlSecondsAfterFinished=600), namespace
    )
    body = kube.wait_for(
        control_plane, run_path(namespace, "doomed"), phase_in("Succeeded", "Failed"), timeout=120
    )
    status = body["status"]
    assert status["phase"] == "Failed"
    assert status["attempts"] == 2
    assert "BackoffLimitExceeded" in {c["reason"] for c in status["conditions"]}
    assert "OperationalError" in status["message"]
    assert "hunter2-secret" not in str(status)
    assert len(pods_of(control_plane, namespace, "doomed")) == 2
    events = control_plane.kubectl(
        "get", "events", "-n", namespace, "--field-selector=involvedObject.name=doomed"
    )
    assert "AttemptFailed" in events.stdout
    assert "hunter2-secret" not in events.stdout


def test_two_runs_for_one_database_are_serialized(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    database_secret: str,
    held_migration_lock: Callable[[], None],
) -> None:
    start_operator()
    kube.apply(control_plane, run("first"), namespace)
    kube.wait_for(control_plane, run_path(namespace, "first"), phase_in("Running"), timeout=60)
    kube.apply(control_plane, run("second"), namespace)
    queued = kube.wait_for(control_plane, run_path(namespace, "second"), phase_in("Queued"), timeout=60)
    assert "held by MigrationRun first" in queued["status"]["message"]
    assert pods_of(control_plane, namespace, "second") == []
    held_migration_lock()
    first = kube.wait_for(
        control_plane, run_path(namespace, "first"), phase_in("Succeeded", "Failed"), timeout=90
    )
    second = kube.wait_for(
        control_plane, run_path(namespace, "second"), phase_in("Succeeded", "Failed"), timeout=90
    )
    assert (first["status"]["phase"], second["status"]["phase"]) == ("Succeeded", "Succeeded")
    assert second["status"]["startedAt"] >= first["status"]["finishedAt"]
    assert first["status"]["message"].startswith(f"upgrade base -> {migration_config.head()}; applied ")
    assert first["status"]["message"].endswith(migration_config.head())
    assert second["status"]["message"].endswith("applied nothing (already there)")


def test_a_manual_migration_holding_the_lock_serializes_the_run(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    database_secret: str,
    held_migration_lock: Callable[[], None],
) -> None:
    start_operator()
    kube.apply(control_plane, run("behind-laptop"), namespace)
    kube.wait_for(control_plane, run_path(namespace, "behind-laptop"), phase_in("Running"), timeout=60)
    wait_for_lock_waiter(database_secret)  # the pod is up and blocked: nothing may be migrated yet
    assert "alembic_version" not in tables(database_secret)
    held_migration_lock()
    body = kube.wait_for(
        control_plane, run_path(namespace, "behind-laptop"), phase_in("Succeeded", "Failed"), timeout=90
    )
    assert body["status"]["phase"] == "Succeeded"


def test_a_downgrade_without_consent_is_rejected_by_the_api_server(
    control_plane: kube.ControlPlane, namespace: str, installed_crds: list[str]
) -> None:
    manifest = run("careless", direction="downgrade", revision="base")
    result = control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(manifest), check=False
    )
    assert result.returncode != 0
    assert "direction downgrade requires allowDowngrade: true" in result.stderr


def test_an_agent_waits_for_its_schema_then_starts(
    control_plane: kube.ControlPlane, namespace: str, start_operator: StartOperator, database_secret: str
) -> None:
    start_operator()
    control_plane.kubectl(
        "create", "secret", "generic", AGENT_TOKEN_SECRET, "--from-literal=token=t", "-n", namespace
    )
    head = migration_config.head()
    agent = {
        "apiVersion": "trading.sapphire-ai.com/v1alpha1",
        "kind": "TradingAgent",
        "metadata": {"name": "patient"},
        "spec": {
            "role": "momentum",
            "requiresSchema": head,
            "podTemplate": {"spec": {"containers": [{"name": "agent", "command": NEVER_EXITS, "args": []}]}},
        },
    }
    kube.apply(control_plane, agent, namespace)
    agent_path = f"{GROUP_PATH}/namespaces/{namespace}/tradingagents/patient"
    waiting = kube.wait_for(control_plane, agent_path, phase_in("WaitingForSchema"), timeout=60)
    assert next(c for c in waiting["status"]["conditions"] if c["type"] == "SchemaReady")["status"] == "False"
    deployment = kube.wait_for(
        control_plane, f"/apis/apps/v1/namespaces/{namespace}/deployments/agent-patient", lambda d: True
    )
    assert deployment["spec"]["replicas"] == 0
    kube.apply(control_plane, run("for-patient"), namespace)
    running = kube.wait_for(control_plane, agent_path, phase_in("Running"), timeout=90)
    schema = next(c for c in running["status"]["conditions"] if c["type"] == "SchemaReady")
    assert schema["status"] == "True"
    assert "for-patient" in schema["message"]


def test_a_killed_operator_never_runs_a_migration_twice(
    control_plane: kube.ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    database_secret: str,
    held_migration_lock: Callable[[], None],
) -> None:
    first = start_operator()
    kube.apply(control_plane, run("once", ttlSecondsAfterFinished=600), namespace)
    kube.wait_for(control_plane, run_path(namespace, "once"), phase_in("Running"), timeout=60)
    wait_for_lock_waiter(database_secret)
    first.kill()  # mid-migration: the pod waits on the lock held by this test
    second = start_operator()
    # The new operator has resumed and looked at the run: a whole reconcile recorded its phase.
    processes.wait_until(
        lambda: second.metric("sapphire_operator_objects", kind="MigrationRun", phase="Running") == 1,
        timeout=30,
        what="the restarted operator to reconcile the running MigrationRun",
    )
    second.kill()
    start_operator()
    held_migration_lock()
    body = kube.wait_for(
        control_plane, run_path(namespace, "once"), phase_in("Succeeded", "Failed"), timeout=90
    )
    assert body["status"]["phase"] == "Succeeded"
    assert body["status"]["attempts"] == 1
    assert pods_of(control_plane, namespace, "once") == ["pod/once-1"]
    assert body["status"]["message"].startswith(f"upgrade base -> {migration_config.head()}; applied ")
    assert body["status"]["message"].endswith(migration_config.head())
