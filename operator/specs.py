"""Reading an admitted spec: what the operator uses, what it ignores, and what it refuses.

The API server validates against the CRD that is installed, which may be newer than this
operator (a field added, an enum widened) or say less than the pydantic model where CEL cannot
express a rule. Fields this operator does not know are ignored with a notice, so an older
operator keeps running resources written for a newer CRD. A field it knows but cannot use
makes the spec invalid: a state that lasts until the spec changes, never a retry every few
seconds (see ``handlers``: ``InvalidSpec`` phase and condition, a Warning event, and
``kopf.PermanentError``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pydantic

Model = TypeVar("Model", bound=pydantic.BaseModel)


class InvalidSpecError(Exception):
    """The spec was admitted by the API server but this operator cannot use it.

    ``fields`` are paths such as ``spec.model.timeoutSeconds``; the message names each one.
    Validation messages never contain the input value, so nothing secret reaches an Event."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.fields = tuple(field for field, _ in problems)
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))


@dataclass(frozen=True)
class SpecReading(Generic[Model]):
    """A usable spec, and the unknown fields that were dropped to get it."""

    spec: Model
    ignored: tuple[str, ...] = ()


def field_path(location: Sequence[int | str]) -> str:
    """``('model', 'timeoutSeconds')`` -> ``spec.model.timeoutSeconds``; ``('env', 0)`` -> ``spec.env[0]``."""
    path = "spec"
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _drop(document: Any, location: Sequence[int | str]) -> bool:
    """Remove the field at ``location`` from ``document``; False when the path does not exist."""
    *parents, last = location
    for part in parents:
        try:
            document = document[part]
        except (KeyError, IndexError, TypeError):
            return False
    if isinstance(document, dict) and last in document:
        del document[last]
        return True
    return False


def _problems(error: pydantic.ValidationError) -> list[tuple[str, str]]:
    return [(field_path(detail["loc"]), detail["msg"]) for detail in error.errors(include_input=False)]


def read_spec(model: type[Model], raw: Mapping[str, Any]) -> SpecReading[Model]:
    """Validate ``raw`` as ``model``, ignoring fields the model does not know. Pure.

    Raises :class:`InvalidSpecError` naming every field that is known but unusable."""
    try:
        return SpecReading(model.model_validate(raw))
    except pydantic.ValidationError as error:
        unknown = [detail["loc"] for detail in error.errors() if detail["type"] == "extra_forbidden"]
        if not unknown:
            raise InvalidSpecError(_problems(error)) from None
    document = copy.deepcopy(dict(raw))
    dropped = [location for location in unknown if _drop(document, location)]
    try:
        spec = model.model_validate(document)
    except pydantic.ValidationError as error:
        raise InvalidSpecError(_problems(error)) from None
    return SpecReading(spec, tuple(field_path(location) for location in dropped))
