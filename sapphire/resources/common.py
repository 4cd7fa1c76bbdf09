"""Building blocks shared by Sapphire's custom resources.

Everything here is declared once and read twice: pydantic validates it in Python (the
operator and ``sapphire up``), and :mod:`sapphire.resources.schema` turns the same models
into the CRDs' OpenAPI schemas, so the API server and Python refuse the same objects.

Money and quantities travel as decimal *strings* on the wire (a float would silently round
a notional) and are ``Decimal`` in Python.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import pydantic
import pydantic.alias_generators

VERSION = "v1alpha1"
"""The version of every Sapphire custom resource."""

DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
"""A non-negative decimal written as a string: ``"2500"``, ``"0.25"``. No exponent, no sign."""

SIGNED_DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
"""A decimal that may be negative (profit and loss)."""

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""RFC 1123 label: what Kubernetes accepts as a Secret or Service name segment."""

SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
"""The characters Kubernetes allows in a Secret's data key."""

CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
"""metav1.Condition's reason: CamelCase, machine-readable."""

CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
"""metav1.Condition's type, as the upstream type declares it."""


class SpecModel(pydantic.BaseModel):
    """Base of every wire model: camelCase on the wire, snake_case in Python.

    Unknown fields are refused, like the API server does with ``kubectl apply`` (strict field
    validation), so a typo such as ``intervalSecond`` fails locally instead of being dropped.
    Field docstrings become the schema's descriptions, and so ``kubectl explain`` output.
    """

    model_config = pydantic.ConfigDict(
        alias_generator=pydantic.alias_generators.to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _parse_decimal(value: object, *, pattern: str) -> decimal.Decimal:
    # Strings only: a YAML `1000.10` arrives as a float and has already lost exactness.
    if isinstance(value, decimal.Decimal):
        return value
    if not isinstance(value, str):
        raise ValueError('must be a decimal written as a string, for example "2500.00" (quote it in YAML)')
    if len(value) > 32 or re.fullmatch(pattern.strip("^$"), value) is None:
        raise ValueError(f"must match {pattern} (at most 32 characters), for example 2500 or 0.25")
    return decimal.Decimal(value)


def _non_negative_decimal(value: object) -> decimal.Decimal:
    return _parse_decimal(value, pattern=DECIMAL_PATTERN)


def _signed_decimal(value: object) -> decimal.Decimal:
    return _parse_decimal(value, pattern=SIGNED_DECIMAL_PATTERN)


DecimalString = Annotated[
    decimal.Decimal,
    pydantic.BeforeValidator(_non_negative_decimal),
    pydantic.PlainSerializer(str, return_type=str, when_used="json"),
    pydantic.WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "maxLength": 32}),
]
"""``Decimal`` in Python, a non-negative decimal string on the wire."""

SignedDecimalString = Annotated[
    decimal.Decimal,
    pydantic.BeforeValidator(_signed_decimal),
    pydantic.PlainSerializer(str, return_type=str, when_used="json"),
    pydantic.WithJsonSchema({"type": "string", "pattern": SIGNED_DECIMAL_PATTERN, "maxLength": 32}),
]
"""``Decimal`` in Python, a possibly negative decimal string on the wire."""


class SecretKeyRef(SpecModel):
    """A key of a Secret in the resource's own namespace. The value is never copied into
    status, events or logs."""

    name: Annotated[str, pydantic.Field(min_length=1, max_length=253, pattern=DNS_LABEL_PATTERN)]
    """Name of the Secret, in the same namespace as this resource."""

    key: Annotated[str, pydantic.Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)]
    """Key inside the Secret's data whose value is used."""


class ConditionStatus(enum.StrEnum):
    """Whether a condition holds, as in metav1.Condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(SpecModel):
    """One aspect of the resource's current state, in the shape of Kubernetes' metav1.Condition,
    so that kubectl wait --for=condition=<type> works."""

    type: Annotated[str, pydantic.Field(max_length=316, pattern=CONDITION_TYPE_PATTERN)]
    """Kind of condition in CamelCase, for example Ready, Progressing or SchemaReady."""

    status: ConditionStatus
    """True, False or Unknown."""

    reason: Annotated[str, pydantic.Field(min_length=1, max_length=1024, pattern=CONDITION_REASON_PATTERN)]
    """Machine-readable CamelCase reason for the condition's last transition."""

    message: Annotated[str, pydantic.Field(max_length=32768)] = ""
    """Human-readable detail about the transition; may be empty."""

    last_transition_time: datetime.datetime
    """When the status last changed from one value to another (RFC 3339)."""

    observed_generation: Annotated[pydantic.StrictInt, pydantic.Field(ge=0)] | None = None
    """The metadata.generation the condition was computed from."""


def set_condition(
    conditions: Sequence[Condition],
    *,
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    observed_generation: int | None,
    now: datetime.datetime,
) -> list[Condition]:
    """Return ``conditions`` with the one of ``type`` added or replaced.

    Like apimachinery's ``meta.SetStatusCondition``: ``lastTransitionTime`` moves only when
    ``status`` changes, so a reconcile that finds nothing new does not rewrite history.
    Pure; the input is not modified, and the order of the other conditions is kept.
    """
    previous = next((condition for condition in conditions if condition.type == type), None)
    changed = previous is None or previous.status != status
    updated = Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=now if changed or previous is None else previous.last_transition_time,
        observed_generation=observed_generation,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if condition.type == type else condition for condition in conditions]


def apply_conditions(
    raw: Sequence[Mapping[str, Any]],
    states: Mapping[str, tuple[bool, str, str]],
    *,
    observed_generation: int | None,
    now: datetime.datetime,
) -> list[dict[str, Any]]:
    """Wire-format conditions with each ``type: (holds, reason, message)`` of ``states`` set,
    through :func:`set_condition`. Pure; for status patches built as plain JSON."""
    conditions = [Condition.model_validate(condition) for condition in raw]
    for kind, (holds, reason, message) in states.items():
        conditions = set_condition(
            conditions,
            type=kind,
            status=ConditionStatus.TRUE if holds else ConditionStatus.FALSE,
            reason=reason,
            message=message,
            observed_generation=observed_generation,
            now=now,
        )
    return [condition.to_wire() for condition in conditions]


def find_condition(conditions: Sequence[Condition], type: str) -> Condition | None:
    """The condition of ``type``, or None when the resource has none."""
    return next((condition for condition in conditions if condition.type == type), None)


def cel_rule(
    rule: str,
    message: str,
    *,
    field_path: str | None = None,
    reason: str | None = None,
) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry.

    ``reason`` is one of FieldValueInvalid, FieldValueForbidden, FieldValueRequired or
    FieldValueDuplicate; ``field_path`` (relative to the schema node carrying the rule, such
    as ``.risk``) makes the API server name the offending field instead of its parent.
    """
    entry = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    if reason is not None:
        entry["reason"] = reason
    return entry


def cel_rules(*rules: dict[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` value that attaches CEL rules to a model or a field."""
    return {"x-kubernetes-validations": list(rules)}


# -- field types more than one resource uses -------------------------------------------------

Image = Annotated[str, pydantic.Field(min_length=1, max_length=512, pattern=r"^\S+$")]
"""A container image reference."""

Count = Annotated[pydantic.StrictInt, pydantic.Field(ge=0)]
"""A whole number, zero or more."""

DeadlineSeconds = Annotated[pydantic.StrictInt, pydantic.Field(ge=30, le=86400)]
"""A run pod's activeDeadlineSeconds: from 30 s to a day."""

TtlSeconds = Annotated[pydantic.StrictInt, pydantic.Field(ge=0, le=604800)]
"""How long a finished run's pods are kept: up to a week."""


def keyed_list(*keys: str) -> dict[str, Any]:
    """The schema extras of a list the API server merges as a map keyed by ``keys`` (a
    strategic merge, server-side apply): each item is told apart by those fields, which must
    be unique in the list."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


Conditions = Annotated[list[Condition], pydantic.Field(json_schema_extra=keyed_list("type"))]
"""A status's conditions, keyed by type as ``kubectl wait --for=condition=`` expects."""


def unique_names(names: Sequence[str], what: str) -> None:
    """Raise ``ValueError`` naming the duplicates when ``names`` repeats one (``what``: "env names")."""
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate {what}: {', '.join(duplicates)}")


class StatusModel(SpecModel):
    """Base of status models. Status is written by the operator, not by users, so fields a
    newer operator added are ignored on read instead of failing an older one."""

    model_config = pydantic.ConfigDict(extra="ignore")

    observed_generation: Count | None = None
    """The metadata.generation the operator last acted on."""


FINAL_RUN_PHASES = frozenset({"Succeeded", "Failed"})
"""The phases a run (MigrationRun, BacktestRun) ends in: it has its result and never runs again."""


class RunConditionType(enum.StrEnum):
    """The condition types the operator maintains on a run (MigrationRun, BacktestRun)."""

    COMPLETE = "Complete"
    FAILED = "Failed"
    PROGRESSING = "Progressing"


class RunStatus(StatusModel):
    """What every run (MigrationRun, BacktestRun) reports: a bare pod followed to its result."""

    conditions: Conditions = pydantic.Field(default_factory=list)
    """Progressing, Complete and Failed, in metav1.Condition shape."""

    started_at: datetime.datetime | None = None
    """When the run's (first) pod was created."""

    finished_at: datetime.datetime | None = None
    """When the run reached Succeeded or Failed."""

    pod_name: str | None = None
    """Name of the run's current or last pod."""

    cleaned_up: pydantic.StrictBool | None = None
    """True once the operator has deleted the run's pods, after ttlSecondsAfterFinished."""


StatusMessage = Annotated[str, pydantic.Field(max_length=4096)]
"""A run's status.message: what it is doing, its result, or why it failed."""


class ObjectMeta(pydantic.BaseModel):
    """The parts of metadata Sapphire reads from a manifest; the rest is kept but not typed."""

    model_config = pydantic.ConfigDict(extra="allow", frozen=True)

    name: Annotated[str, pydantic.Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
    namespace: str | None = None
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    annotations: dict[str, str] = pydantic.Field(default_factory=dict)


class Document(pydantic.BaseModel):
    """What every whole resource document (a YAML file's TradingAgent, MigrationRun, BacktestRun)
    has besides its kind, spec and status, which each subclass declares."""

    model_config = pydantic.ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    api_version: Literal["trading.sapphire-ai.com/v1alpha1"] = pydantic.Field(alias="apiVersion")
    metadata: ObjectMeta
