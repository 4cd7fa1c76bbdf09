"""MigrationRun: one alembic migration of one database, declared as a Kubernetes resource.

The operator runs it as a bare Pod (not a Job) and decides the result from the migration
container's own termination, so a sidecar that never exits (the Cloud SQL Auth Proxy) can
no longer hang the run. The object stays afterwards as the record of what ran; its spec is
therefore immutable.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal, Self

import pydantic

import sapphire
from sapphire.domain.migration import Direction
from sapphire.resources import common

KIND = "MigrationRun"
PLURAL = "migrationruns"
SINGULAR = "migrationrun"
SHORT_NAMES = ("mr",)
API_VERSION = f"{sapphire.GROUP}/{common.VERSION}"

HEAD = "head"
"""The newest revision the migration image knows."""

BASE = "base"
"""Before the first revision: an empty schema (downgrade only)."""

MIGRATION_CONTAINER = "migrate"
"""Name of the container that runs alembic; sidecars must not take it."""

TARGET_REVISION_PATTERN = r"^[A-Za-z0-9_]{1,64}$"
"""``head``, ``base`` or an alembic revision id. Relative targets such as ``+1`` are refused:
a record of a migration must say where it went."""


class DatabaseRef(common.SpecModel):
    """The database to migrate."""

    name: Annotated[str, pydantic.Field(min_length=1, max_length=63, pattern=common.DNS_LABEL_PATTERN)]
    """Logical identity of the database, for example trading. At most one MigrationRun runs per
    name in a namespace; the others wait in phase Queued."""

    url_secret_ref: common.SecretKeyRef
    """Secret key holding the SQLAlchemy database URL. Never copied into status, events or logs."""


class Sidecar(pydantic.BaseModel):
    """A native sidecar container (an initContainer with restartPolicy Always) started before the
    migration and stopped after it, for example the Cloud SQL Auth Proxy. Any Container field
    may be given; name and image are required."""

    model_config = pydantic.ConfigDict(
        alias_generator=pydantic.alias_generators.to_camel,
        populate_by_name=True,
        extra="allow",
        use_attribute_docstrings=True,
        frozen=True,
        json_schema_extra=common.cel_rules(
            common.cel_rule(
                f"self.name != '{MIGRATION_CONTAINER}'",
                f"name {MIGRATION_CONTAINER} is reserved for the migration container",
                field_path=".name",
                reason="FieldValueInvalid",
            )
        ),
    )

    name: Annotated[str, pydantic.Field(min_length=1, max_length=63, pattern=common.DNS_LABEL_PATTERN)]
    """Container name, unique in the pod; not migrate."""

    image: common.Image
    """Container image of the sidecar."""

    restart_policy: Literal["Always"] = "Always"
    """Always: what makes an initContainer a native sidecar that runs beside the migration."""

    @pydantic.model_validator(mode="after")
    def _not_migrate(self) -> Self:
        if self.name == MIGRATION_CONTAINER:
            raise ValueError(f"name {MIGRATION_CONTAINER} is reserved for the migration container")
        return self

    def to_wire(self) -> dict[str, object]:
        """The container as the Pod's initContainers entry expects it, unknown fields included."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class MigrationRunSpec(common.SpecModel):
    """Desired migration: which database, to which revision, in which direction. Immutable."""

    model_config = pydantic.ConfigDict(
        json_schema_extra=common.cel_rules(
            common.cel_rule(
                f"self.direction != '{Direction.DOWNGRADE}'"
                " || (has(self.allowDowngrade) && self.allowDowngrade)",
                f"direction {Direction.DOWNGRADE} requires allowDowngrade: true",
                field_path=".allowDowngrade",
                reason="FieldValueRequired",
            ),
            common.cel_rule(
                f"self.direction != '{Direction.UPGRADE}' || self.revision != '{BASE}'",
                f"revision {BASE} is only a downgrade target",
                field_path=".revision",
                reason="FieldValueInvalid",
            ),
            common.cel_rule(
                f"self.direction != '{Direction.DOWNGRADE}' || self.revision != '{HEAD}'",
                f"a downgrade needs a revision id or {BASE}, not {HEAD}",
                field_path=".revision",
                reason="FieldValueInvalid",
            ),
            common.cel_rule(
                "self == oldSelf",
                "spec is immutable: a MigrationRun records one migration; create a new MigrationRun",
                reason="FieldValueForbidden",
            ),
        )
    )

    revision: Annotated[str, pydantic.Field(pattern=TARGET_REVISION_PATTERN)]
    """Alembic target: head, an alembic revision id, or base (downgrade only)."""

    direction: Direction = Direction.UPGRADE
    """upgrade or downgrade. A downgrade needs allowDowngrade: true."""

    allow_downgrade: pydantic.StrictBool = False
    """Explicit consent to a downgrade, which may drop columns and their data."""

    database: DatabaseRef
    """The database to migrate and the Secret holding its URL."""

    image: common.Image | None = None
    """Image holding the migrations; defaults to the operator's Sapphire image."""

    sidecars: Annotated[
        list[Sidecar],
        pydantic.Field(
            max_length=8,
            json_schema_extra=common.keyed_list("name"),
        ),
    ] = pydantic.Field(default_factory=list)
    """Native sidecars started before the migration, such as the Cloud SQL Auth Proxy. The result
    comes from the migration container alone, so a sidecar that never exits cannot hang the run."""

    backoff_limit: Annotated[pydantic.StrictInt, pydantic.Field(ge=0, le=10)] = 2
    """Retries after a failed attempt; each attempt is a new pod."""

    active_deadline_seconds: common.DeadlineSeconds = 900
    """Deadline of one attempt, in seconds; the pod is stopped and the attempt fails after it."""

    ttl_seconds_after_finished: common.TtlSeconds = 300
    """Seconds the finished pod is kept so its logs can be read; the MigrationRun stays as the record."""

    @pydantic.field_validator("sidecars")
    @classmethod
    def _unique_sidecars(cls, sidecars: list[Sidecar]) -> list[Sidecar]:
        common.unique_names([sidecar.name for sidecar in sidecars], "sidecar names")
        return sidecars

    @pydantic.model_validator(mode="after")
    def _direction(self) -> Self:
        # Mirrors the CEL rules above (immutability needs the old object: API server only).
        if self.direction is Direction.DOWNGRADE:
            if not self.allow_downgrade:
                raise ValueError("direction downgrade requires allowDowngrade: true")
            if self.revision == HEAD:
                raise ValueError(f"a downgrade needs a revision id or {BASE}, not {HEAD}")
        elif self.revision == BASE:
            raise ValueError(f"revision {BASE} is only a downgrade target")
        return self

    @property
    def is_downgrade(self) -> bool:
        """True when the run moves the schema backwards."""
        return self.direction is Direction.DOWNGRADE

    @property
    def targets_head(self) -> bool:
        """True when the target is whatever the newest revision of the image is."""
        return self.revision == HEAD

    @property
    def lock_key(self) -> str:
        """What serializes runs: at most one MigrationRun per database name runs at a time."""
        return self.database.name


class MigrationRunPhase(enum.StrEnum):
    """Where the run is in its life cycle. Succeeded and Failed are final."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def is_final(self) -> bool:
        """True once the run has a result and will never run again."""
        return self in common.FINAL_RUN_PHASES


MigrationRunConditionType = common.RunConditionType


class MigrationRunStatus(common.RunStatus):
    """Observed state of the run, written by the operator."""

    phase: MigrationRunPhase | None = None
    """Pending, Queued (another run holds the database), Running, Succeeded or Failed."""

    from_revision: Annotated[str, pydantic.Field(max_length=64)] | None = None
    """Revision the database was at when the migration started, as the migration reported it."""

    to_revision: Annotated[str, pydantic.Field(max_length=64)] | None = None
    """Revision the database was at when the migration ended, as the migration reported it."""

    attempts: common.Count | None = None
    """Migration pods started so far, at most backoffLimit + 1."""

    message: common.StatusMessage | None = None
    """Tail of the migration's output or the reason it failed; never contains the database URL."""

    revisions: Annotated[
        list[Annotated[str, pydantic.Field(max_length=64)]],
        pydantic.Field(max_length=1000, json_schema_extra={"x-kubernetes-list-type": "atomic"}),
    ] = pydantic.Field(default_factory=list)
    """Lineage of toRevision as the migration reported it: every revision from base up to it.
    A TradingAgent's requiresSchema is met when its revision is in this list."""


class MigrationRun(common.Document):
    """A whole MigrationRun document, as read from a YAML file."""

    kind: Literal["MigrationRun"]
    spec: MigrationRunSpec
    status: MigrationRunStatus | None = None
