"""The Kubernetes payloads the operator reads, typed: one home for their shapes.

The operator speaks raw JSON to the API server (:mod:`sapphire.operator.kubeapi`) and gets
bodies from kopf's watches and indexes. Reading ``pod["status"]["containerStatuses"]`` out of
a ``dict[str, Any]`` checks nothing: a misspelt field is silently ``None``. These TypedDicts
name the fields the operator reads of each kind, as kopf types its own raw bodies
(``kopf.RawBody``), so mypy checks every read.

They list only what the operator reads; a payload carries more, and the API server owns its
full schema. Everything is ``total=False`` except what the API server always sets on a
stored object (``metadata.name``, a condition's ``type`` and ``status``, a container
status's ``name``): a new object, a status not yet written, or a test's minimal body may lack
the rest, and ``.get`` says so. ``spec`` of the custom resources stays a plain dict: its one
home is the pydantic model (:mod:`sapphire.resources`) it is validated into before it is read.

What the operator *writes* (the manifests of :mod:`sapphire.operator.builders`, status
patches, Events) is :data:`Json`: built here and validated by the API server on the way in.
"""

from __future__ import annotations

from typing import Any, Required, TypedDict

Json = dict[str, Any]
"""A manifest or patch the operator builds and sends, or an answer it does not read."""


class OwnerReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool
    blockOwnerDeletion: bool


class ObjectMeta(TypedDict, total=False):
    name: Required[str]
    namespace: str
    uid: str
    generation: int
    creationTimestamp: str
    deletionTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]
    ownerReferences: list[OwnerReference]


class Condition(TypedDict, total=False):
    """A status condition (of a Deployment, or of our own resources)."""

    type: Required[str]
    status: Required[str]
    reason: str
    message: str
    observedGeneration: int
    lastTransitionTime: str


class Object(TypedDict, total=False):
    """Any object, read for its metadata alone."""

    apiVersion: str
    kind: str
    metadata: Required[ObjectMeta]


# -- core/v1 Pod ----------------------------------------------------------------------------


class ContainerStateTerminated(TypedDict, total=False):
    exitCode: int
    reason: str
    message: str
    """The termination message: the migration's or backtest's JSON report."""
    finishedAt: str


class ContainerStateWaiting(TypedDict, total=False):
    reason: str
    message: str


class ContainerStateRunning(TypedDict, total=False):
    startedAt: str


class ContainerState(TypedDict, total=False):
    waiting: ContainerStateWaiting
    running: ContainerStateRunning
    terminated: ContainerStateTerminated


class ContainerStatus(TypedDict, total=False):
    name: Required[str]
    state: ContainerState
    lastState: ContainerState
    """How the previous run ended (``terminated``), while the container runs again."""
    ready: bool
    restartCount: int


class PodStatus(TypedDict, total=False):
    phase: str
    reason: str
    """``DeadlineExceeded`` once ``activeDeadlineSeconds`` has passed."""
    startTime: str
    containerStatuses: list[ContainerStatus]
    initContainerStatuses: list[ContainerStatus]


class Pod(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: Required[ObjectMeta]
    spec: Json
    status: PodStatus


# -- apps/v1 Deployment ---------------------------------------------------------------------


class DeploymentStatus(TypedDict, total=False):
    observedGeneration: int
    readyReplicas: int
    updatedReplicas: int
    conditions: list[Condition]


class Deployment(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: Required[ObjectMeta]
    spec: Json
    status: DeploymentStatus


# -- our custom resources -------------------------------------------------------------------


class RunStatus(TypedDict, total=False):
    """The status fields of a MigrationRun or BacktestRun the operator reads back."""

    phase: str
    message: str
    observedGeneration: int
    startedAt: str
    finishedAt: str
    cleanedUp: bool
    """Final, and its pods deleted: nothing is left to reconcile."""
    conditions: list[Condition]
    toRevision: str | None
    revisions: list[str]


class MigrationRun(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: Required[ObjectMeta]
    spec: Json
    status: RunStatus


class BacktestRun(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: Required[ObjectMeta]
    spec: Json
    status: RunStatus


class AgentStatus(TypedDict, total=False):
    phase: str
    observedGeneration: int
    conditions: list[Condition]


class TradingAgent(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: Required[ObjectMeta]
    spec: Json
    status: AgentStatus


Resource = TradingAgent | MigrationRun | BacktestRun
"""One of our custom resources, as the API server or kopf delivers it."""


# -- kopf.dev/v1 KopfPeering ----------------------------------------------------------------


class Peer(TypedDict, total=False):
    """One operator's entry in a KopfPeering's status, as kopf writes it."""

    priority: int
    lifetime: int
    lastseen: str


class KopfPeering(TypedDict, total=False):
    metadata: ObjectMeta
    status: dict[str, Peer]
    """Keyed by the peer's identity."""
