"""Prometheus metrics of the operator: reconciles, errors, durations, objects by phase, resync passes."""

from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import prometheus_client

REGISTRY = prometheus_client.CollectorRegistry()

RECONCILES = prometheus_client.Counter(
    "sapphire_operator_reconciles",
    "Reconciles run, by kind and trigger.",
    ["kind", "trigger"],
    registry=REGISTRY,
)
UNCHANGED_CHILD_EVENTS = prometheus_client.Counter(
    "sapphire_operator_unchanged_child_events",
    "Events of an agent's Deployment or pods that changed nothing its status or Deployment depend"
    " on, answered without a reconcile (and without any request), by kind.",
    ["kind"],
    registry=REGISTRY,
)
ERRORS = prometheus_client.Counter(
    "sapphire_operator_reconcile_errors", "Reconciles that raised, by kind.", ["kind"], registry=REGISTRY
)
DURATION = prometheus_client.Histogram(
    "sapphire_operator_reconcile_duration_seconds",
    "Time one reconcile took, by kind.",
    ["kind"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OBJECTS = prometheus_client.Gauge(
    "sapphire_operator_objects",
    "Objects the operator handles, by kind and phase.",
    ["kind", "phase"],
    registry=REGISTRY,
)
RESYNC_PASSES = prometheus_client.Counter(
    "sapphire_operator_resync_passes",
    "Passes of the periodic resync loops, by loop and outcome: acted (this operator may act, and"
    " reconciled what the loop covers) or paused (a peer of higher or equal priority leads).",
    ["loop", "outcome"],
    registry=REGISTRY,
)
API_REQUESTS = prometheus_client.Counter(
    "sapphire_operator_api_requests",
    "Kubernetes API requests the operator sent (watches aside: kopf streams them), by verb and by"
    " the trigger of the reconcile that sent them (none: outside any reconcile).",
    ["trigger", "verb"],
    registry=REGISTRY,
)
_trigger: contextvars.ContextVar[str] = contextvars.ContextVar("sapphire_operator_trigger", default="none")


@asynccontextmanager
async def triggered_by(trigger: str) -> AsyncIterator[None]:
    """Attribute the API requests sent inside the block to ``trigger`` (a resync, an event...)."""
    token = _trigger.set(trigger)
    try:
        yield
    finally:
        _trigger.reset(token)


def count_request(verb: str) -> None:
    API_REQUESTS.labels(_trigger.get(), verb).inc()


QUEUED_MIGRATIONS = prometheus_client.Gauge(
    "sapphire_operator_migrations_queued", "MigrationRuns waiting for their database.", registry=REGISTRY
)

_phases: dict[tuple[str, str], str] = {}


def record_phase(kind: str, key: str, phase: str | None) -> None:
    """Remember one object's phase (None when it is gone) and refresh the phase gauges."""
    if phase is None:
        _phases.pop((kind, key), None)
    else:
        _phases[(kind, key)] = phase
    counts: dict[tuple[str, str], int] = {}
    for (object_kind, _), object_phase in _phases.items():
        counts[(object_kind, object_phase)] = counts.get((object_kind, object_phase), 0) + 1
    OBJECTS.clear()
    for (object_kind, object_phase), count in counts.items():
        OBJECTS.labels(object_kind, object_phase).set(count)
    QUEUED_MIGRATIONS.set(counts.get(("MigrationRun", "Queued"), 0))


@contextmanager
def reconciling(kind: str, trigger: str) -> Iterator[None]:
    RECONCILES.labels(kind, trigger).inc()
    started = time.perf_counter()
    try:
        yield
    except Exception:
        ERRORS.labels(kind).inc()
        raise
    finally:
        DURATION.labels(kind).observe(time.perf_counter() - started)


def serve(port: int, host: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` from a background thread."""
    prometheus_client.start_http_server(port, addr=host, registry=REGISTRY)
