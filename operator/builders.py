"""Pure builders: TradingAgent -> Deployment, MigrationRun -> Pod, BacktestRun -> Pod.

Nothing here does I/O. Each builder deep-copies what it takes from the user, so a spec is
never mutated, and returns a plain manifest the handlers adopt and apply. One label
vocabulary (:func:`common_labels`) is shared by everything the operator creates.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
from collections.abc import Mapping
from typing import Any, TypeGuard

import yaml

import sapphire
from sapphire.agents import settings as agent_settings
from sapphire.operator import specs
from sapphire.operator.payloads import Json as Manifest
from sapphire.operator.settings import OperatorSettings
from sapphire.resources import backtestrun, migrationrun, tradingagent

MANAGED_BY = "sapphire-operator"
AGENT_LABEL = f"{sapphire.GROUP}/agent"
ROLE_LABEL = f"{sapphire.GROUP}/role"
MIGRATION_LABEL = f"{sapphire.GROUP}/migrationrun"
ATTEMPT_LABEL = f"{sapphire.GROUP}/attempt"
DATABASE_LABEL = f"{sapphire.GROUP}/database"
BACKTEST_LABEL = f"{sapphire.GROUP}/backtestrun"
SLICE_LABEL = f"{sapphire.GROUP}/slice"
"""On a backtest pod: the number of the period's slice it replays (1 unless parallelism > 1)."""
TRIAL_LABEL = f"{sapphire.GROUP}/trial"
"""On a backtest pod of a grid (instead of the slice label): the number of the trial it runs."""
SPEC_HASH_ANNOTATION = f"{sapphire.GROUP}/spec-hash"
AGENT_CONTAINER = "agent"
TERMINATION_LOG = "/dev/termination-log"

DEFAULT_AGENT_RESOURCES: Manifest = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"cpu": "1", "memory": "512Mi"},
}
DEFAULT_MIGRATION_RESOURCES: Manifest = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"cpu": "1", "memory": "512Mi"},
}
DEFAULT_BACKTEST_RESOURCES: Manifest = {
    "requests": {"cpu": "500m", "memory": "512Mi"},
    "limits": {"cpu": "1", "memory": "2Gi"},
}
BACKTEST_AGENTS_ENV = "SAPPHIRE_BACKTEST_AGENTS"
"""The environment variable the backtest pod reads its agents' YAML from (``--agents-env``)."""
BACKTEST_REPORT_MOUNT = "/report"


def restricted_container_security() -> Manifest:
    """The Pod Security "restricted" profile for one container."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_pod_security() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def managed_selector(component: str) -> dict[str, str]:
    """The labels that select what this operator made for ``component`` (agent, migration,
    backtest): a subset of :func:`common_labels`, for kopf's label filters."""
    return {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/component": component}


def common_labels(component: str, instance: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "sapphire",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": instance,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": "sapphire",
    }


def _named_items(value: Any) -> TypeGuard[list[Mapping[str, Any]]]:
    return isinstance(value, list) and all(isinstance(item, Mapping) and "name" in item for item in value)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` merged into a copy of ``base``. Neither input is modified.

    Mappings merge recursively. Lists of named items (containers, env, volumes...) merge by
    ``name``, as a strategic merge patch does, so an override of one container's command
    keeps the rest of that container. Any other value replaces.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = deep_merge(current, value)
        elif _named_items(value) and _named_items(current):
            by_name = {item["name"]: dict(item) for item in current}
            for item in value:
                by_name[item["name"]] = deep_merge(by_name.get(item["name"], {}), item)
            merged[key] = list(by_name.values())
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def spec_hash(manifest: Mapping[str, Any]) -> str:
    """A short stable digest of a manifest, to see at a glance what a reconcile applied."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]


def agent_deployment_name(agent: str) -> str:
    return f"agent-{agent}"[:63].rstrip("-")


def _secret_env(name: str, secret: str, key: str) -> Manifest:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def agent_probes() -> Manifest:
    """The agent's probes, on its metrics port (:mod:`sapphire.agents.health`).

    Readiness is every loop having reached the API and the bus, and none failing. Liveness
    fails only when the agent cannot answer at all (a stuck event loop) or a loop has failed
    for ``SAPPHIRE_HEALTH_FAILING_SECONDS``; the agent then also exits by itself with the
    reason, so the probe is the backstop, slow enough to never race it."""
    return {
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "metrics"},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "metrics"},
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 6,
        },
    }


def agent_env(
    *,
    name: str,
    spec: tradingagent.TradingAgentSpec,
    settings: OperatorSettings,
) -> list[Manifest]:
    """The environment ``sapphire agent run`` reads (``AgentSettings``, prefix ``SAPPHIRE_``):
    the spec's part from :func:`agent_settings.spec_settings`, the one translation."""
    from_spec = [
        {"name": agent_settings.env_name(field), "value": agent_settings.env_value(value)}
        for field, value in agent_settings.spec_settings(name=name, spec=spec).items()
    ]
    env: list[Manifest] = [
        *from_spec[:4],  # name, role, symbols, interval: first, where they always were
        {"name": "SAPPHIRE_TRADER_API_URL", "value": str(settings.trader_api_url)},
        {"name": "SAPPHIRE_REDIS_URL", "value": str(settings.agent_redis_url)},
        {"name": "SAPPHIRE_LOG_FORMAT", "value": "json"},
        _secret_env("SAPPHIRE_AGENT_TOKEN", settings.agent_token_secret, "token"),
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        *from_spec[4:],
    ]
    if settings.agent_metrics_port:
        env.append({"name": "SAPPHIRE_METRICS_PORT", "value": str(settings.agent_metrics_port)})
    # An agent whose loops keep failing leaves the reason here, then exits to be restarted.
    env.append({"name": "SAPPHIRE_TERMINATION_LOG", "value": TERMINATION_LOG})
    if spec.model is not None and spec.model.api_key_secret_ref is not None:
        reference = spec.model.api_key_secret_ref
        env.append(_secret_env("SAPPHIRE_MODEL_API_KEY", reference.name, reference.key))
    # The user's extra variables come last; the CRD refuses names that start with SAPPHIRE_.
    env += [variable.to_wire() for variable in spec.env]
    return env


def build_agent_deployment(
    *,
    name: str,
    namespace: str,
    spec: tradingagent.TradingAgentSpec,
    settings: OperatorSettings,
    schema_ready: bool = True,
) -> Manifest:
    """The Deployment that runs one TradingAgent: one replica (zero when paused or waiting
    for its schema), ``Recreate`` for the executor so two never trade one account at once."""
    labels = {
        **common_labels("agent", name),
        AGENT_LABEL: name,
        ROLE_LABEL: spec.role.value,
    }
    selector = {AGENT_LABEL: name, "app.kubernetes.io/managed-by": MANAGED_BY}
    resources = spec.resources.to_wire() if spec.resources is not None else DEFAULT_AGENT_RESOURCES
    ports: list[Manifest] = []
    probes: Manifest = {}
    if settings.agent_metrics_port:  # scraped by the monitoring component's PodMonitor
        ports.append({"name": "metrics", "containerPort": settings.agent_metrics_port})
        probes = agent_probes()
    container: Manifest = {
        "name": AGENT_CONTAINER,
        "image": spec.image or settings.agent_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sapphire"],
        "args": ["agent", "run"],
        "env": agent_env(name=name, spec=spec, settings=settings),
        "resources": copy.deepcopy(resources),
        "securityContext": restricted_container_security(),
        "ports": ports,
        **probes,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir, not the host
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: Manifest = {
        "serviceAccountName": settings.agent_service_account,
        "automountServiceAccountToken": False,
        "securityContext": restricted_pod_security(),
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    template_metadata: Manifest = {"labels": dict(labels), "annotations": {}}
    template = spec.pod_template
    if template is not None:
        if template.metadata is not None:
            # Our labels win: the selector depends on them.
            template_metadata["labels"] = {**template.metadata.labels, **labels}
            template_metadata["annotations"] = dict(template.metadata.annotations)
        if template.spec:
            pod_spec = deep_merge(pod_spec, template.spec)
    replicas = 0 if spec.paused or not schema_ready else 1
    deployment: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": agent_deployment_name(name),
            "namespace": namespace,
            "labels": labels,
            "annotations": {},
        },
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "Recreate"}
            if spec.is_executor
            else {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": template_metadata, "spec": pod_spec},
        },
    }
    deployment["metadata"]["annotations"][SPEC_HASH_ANNOTATION] = spec_hash(deployment["spec"])
    return deployment


def attempt_pod_name(run: str, attempt: int) -> str:
    """Deterministic per attempt: creating it twice fails with AlreadyExists, never runs twice."""
    suffix = f"-{attempt}"
    return f"{run[: 63 - len(suffix)].rstrip('-')}{suffix}"


def build_migration_pod(
    *,
    name: str,
    namespace: str,
    spec: migrationrun.MigrationRunSpec,
    attempt: int,
    settings: OperatorSettings,
) -> Manifest:
    """The bare Pod of one migration attempt: the migration container plus native sidecars.

    ``restartPolicy: Never``: a retry is a new pod with the next attempt number. The
    migration reports ``{"from", "to", "applied", "revisions"}`` in its termination message,
    and on failure the tail of its log (``FallbackToLogsOnError``).
    """
    labels = {
        **common_labels("migration", name),
        MIGRATION_LABEL: name,
        ATTEMPT_LABEL: str(attempt),
        DATABASE_LABEL: spec.database.name,
    }
    reference = spec.database.url_secret_ref
    migrate: Manifest = {
        "name": migrationrun.MIGRATION_CONTAINER,
        "image": spec.image or settings.agent_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sapphire"],
        "args": [
            "migrate",
            "--revision",
            spec.revision,
            "--direction",
            spec.direction.value,
            "--termination-log",
            TERMINATION_LOG,
        ],
        "env": [
            _secret_env("DATABASE_URL", reference.name, reference.key),
            {"name": "SAPPHIRE_LOG_FORMAT", "value": "json"},
        ],
        "resources": copy.deepcopy(DEFAULT_MIGRATION_RESOURCES),
        "securityContext": restricted_container_security(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": attempt_pod_name(name, attempt), "namespace": namespace, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": spec.active_deadline_seconds,
            "serviceAccountName": settings.migration_service_account,
            "automountServiceAccountToken": False,
            "securityContext": restricted_pod_security(),
            "initContainers": [sidecar.to_wire() for sidecar in spec.sidecars],
            "containers": [migrate],
        },
    }


def backtest_agents_yaml(agents: Mapping[str, Mapping[str, Any]]) -> str:
    """The TradingAgent documents ``sapphire backtest`` reads, one per agent, sorted by name.

    A referenced TradingAgent's spec is taken as it is, except that ``paused`` is dropped: a
    paused agent is backtested too (that is often why it is paused)."""
    documents = []
    for name in sorted(agents):
        spec = {key: copy.deepcopy(value) for key, value in agents[name].items() if key != "paused"}
        documents.append(
            {"apiVersion": tradingagent.API_VERSION, "kind": tradingagent.KIND, "metadata": {"name": name},
             "spec": spec}
        )  # fmt: skip
    return yaml.safe_dump_all(documents, sort_keys=True)


def backtest_agents_of_yaml(text: str) -> dict[str, dict[str, Any]]:
    """The agents' specs by name, read back from :func:`backtest_agents_yaml`'s text."""
    return {str(document["metadata"]["name"]): document["spec"] for document in yaml.safe_load_all(text)}


def trial_agents(
    agents: Mapping[str, Mapping[str, Any]], trial: backtestrun.Trial
) -> dict[str, dict[str, Any]]:
    """The agents' specs (wire form, by name) with ``trial``'s settings applied: each sets one
    field of one agent's spec to its value, converted to the field's wire type. Pure.

    Every trial of a grid sets every axis's field, so applying trial k to the agents of any
    other trial of the same grid gives trial k's agents exactly: a trial created later (with
    parallelism below the number of trials, or after a restart) is built from the agents an
    earlier trial's pod was given, as read when the run started.

    Raises ``ValueError`` naming the axis (``grid[1] (executor.risk.stopLossBps=20000)``) when
    the changed spec is not a valid TradingAgent spec, or the field is not that agent's."""
    applied = {name: copy.deepcopy(dict(spec)) for name, spec in agents.items()}
    for index, setting in enumerate(trial.settings):
        where = f"grid[{index}] ({setting.label()})"
        spec = applied[setting.agent]
        is_executor = spec.get("role") == tradingagent.Role.EXECUTOR.value
        if setting.parameter.is_risk and not is_executor:
            raise ValueError(f"{where}: agent {setting.agent} has no risk limits: only the executor has")
        if not setting.parameter.is_risk and is_executor:
            raise ValueError(f"{where}: intervalSeconds is an analyst's: the executor reacts to signals")
        *parents, leaf = setting.parameter.path
        target = spec
        for key in parents:
            target = target.setdefault(key, {})
        target[leaf] = setting.parameter.wire_value(setting.value)
    for name in dict.fromkeys(setting.agent for setting in trial.settings):
        try:
            specs.read_spec(tradingagent.TradingAgentSpec, applied[name])
        except specs.InvalidSpecError as error:
            axes = ", ".join(
                f"grid[{index}] ({setting.label()})"
                for index, setting in enumerate(trial.settings)
                if setting.agent == name
            )
            raise ValueError(f"{axes}: agent {name}: {error}") from None
    return applied


def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat()


def backtest_pod_name(run: str, number: int) -> str:
    """``<run>-<n>`` for slice (or trial) n: deterministic, so a slice never gets two pods.
    Slice 1 is ``<run>-1``, the name the single pod of a run has always had."""
    return attempt_pod_name(run, number)


def backtest_report_directory(run: str, spec: backtestrun.BacktestRunSpec, number: int) -> str:
    """Where on the claim slice (or trial) ``number`` writes its report: ``<run>``,
    ``<run>/<slice>`` when the period is split, ``<run>/trial-<trial>`` for a grid's trial (a
    name apart, so nothing reads a trial as a slice of one period)."""
    if spec.grid is not None:
        return f"{run}/{backtestrun.trial_folder(number)}"
    return f"{run}/{number}" if spec.parallelism > 1 else run


def build_backtest_pod(
    *,
    name: str,
    namespace: str,
    spec: backtestrun.BacktestRunSpec,
    period: backtestrun.PeriodSlice,
    agents_yaml: str,
    settings: OperatorSettings,
    trial: backtestrun.Trial | None = None,
) -> Manifest:
    """The bare Pod of one backtest (of one ``period`` slice, or of one ``trial`` of a grid
    over the whole period): ``sapphire backtest`` with the agents in an environment variable,
    the data fetched from its URL, the report on the claim (when one is named).

    ``restartPolicy: Never`` and a single attempt: a replay is deterministic, so running it
    again gives the same failure. The headline (or the error) is the termination message."""
    number = period.number if trial is None else trial.number
    part = {SLICE_LABEL: str(number)} if trial is None else {TRIAL_LABEL: str(number)}
    labels = {**common_labels("backtest", name), BACKTEST_LABEL: name, **part}
    output = (
        f"{BACKTEST_REPORT_MOUNT}/{backtest_report_directory(name, spec, number)}"
        if spec.report_claim_name
        else "/tmp/report"  # noqa: S108 - an emptyDir
    )
    args = ["backtest", "--agents-env", BACKTEST_AGENTS_ENV, "--data", spec.data.url]
    if spec.data.sha256:
        args += ["--data-sha256", spec.data.sha256]
    if period.start is not None:
        args += ["--from", _timestamp(period.start)]
    if period.end is not None:
        args += ["--to", _timestamp(period.end)]
    args += [
        "--timeframe", str(spec.timeframe_seconds),
        "--spread-bps", str(spec.spread_bps),
        "--sample-seconds", str(spec.sample_seconds),
        "--output", output,
        "--no-progress",
        "--termination-log", TERMINATION_LOG,
    ]  # fmt: skip
    mounts: list[Manifest] = [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108 - an emptyDir
    volumes: list[Manifest] = [{"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}]
    if spec.report_claim_name:
        mounts.append({"name": "report", "mountPath": BACKTEST_REPORT_MOUNT})
        volumes.append({"name": "report", "persistentVolumeClaim": {"claimName": spec.report_claim_name}})
    container: Manifest = {
        "name": backtestrun.BACKTEST_CONTAINER,
        "image": spec.image or settings.agent_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sapphire"],
        "args": args,
        "env": [
            {"name": BACKTEST_AGENTS_ENV, "value": agents_yaml},
            {"name": "SAPPHIRE_LOG_FORMAT", "value": "json"},
        ],
        "resources": copy.deepcopy(DEFAULT_BACKTEST_RESOURCES),
        "securityContext": restricted_container_security(),
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": backtest_pod_name(name, number), "namespace": namespace, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": spec.active_deadline_seconds,
            "serviceAccountName": settings.backtest_service_account,
            "automountServiceAccountToken": False,
            "securityContext": restricted_pod_security(),
            "containers": [container],
            "volumes": volumes,
        },
    }
