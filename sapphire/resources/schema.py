"""Turn a pydantic model into a structural OpenAPI v3 schema for a CRD.

Pydantic's JSON Schema is close to what Kubernetes wants, but not the same dialect: it uses
``$ref``/``$defs``, spells ``Optional[X]`` as ``anyOf: [X, null]``, writes ``title``s and
numeric ``exclusiveMinimum``, and says ``additionalProperties: true`` where Kubernetes says
``x-kubernetes-preserve-unknown-fields``. :func:`structural_schema` rewrites it and refuses
anything it does not understand, so a new kind of field fails the generator loudly instead
of producing a CRD the API server rejects or, worse, accepts with a hole in its validation.

Contract of the result: no ``$ref``, no ``anyOf`` except int-or-string, every node typed
(or preserve-unknown/int-or-string), a ``description`` on every property, no null defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

_COPIED_KEYS = frozenset(
    {
        "type",
        "format",
        "enum",
        "pattern",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "description",
        "required",
        "x-kubernetes-validations",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string",
    }
)
_HANDLED_KEYS = _COPIED_KEYS | {
    "$ref",
    "allOf",
    "anyOf",
    "title",
    "default",
    "properties",
    "items",
    "additionalProperties",
    "const",
    "exclusiveMinimum",
    "exclusiveMaximum",
}


class SchemaConversionError(ValueError):
    """The model uses a construct that has no structural OpenAPI equivalent here."""


def structural_schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model`` as its wire (camelCase) form.

    Pure and deterministic: the same model always gives an equal dict.
    """
    document = model.model_json_schema(by_alias=True, mode="validation")
    definitions: Mapping[str, Any] = document.pop("$defs", {})
    return _convert(document, definitions, where=model.__name__)


def _resolve(node: Mapping[str, Any], definitions: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Inline ``$ref`` and single-element ``allOf``; sibling keys (a field's own description,
    default, CEL rules) win over the referenced definition's."""
    merged = dict(node)
    if "allOf" in merged:
        parts = merged.pop("allOf")
        if len(parts) != 1:
            raise SchemaConversionError(f"{where}: allOf with {len(parts)} members")
        merged = {**_resolve(parts[0], definitions, where), **merged}
    if "$ref" in merged:
        name = merged.pop("$ref").removeprefix("#/$defs/")
        if name not in definitions:
            raise SchemaConversionError(f"{where}: unknown $ref {name}")
        target = _resolve(definitions[name], definitions, where)
        merged = {**target, **merged}
    anyof = merged.get("anyOf")
    if anyof is not None and not merged.get("x-kubernetes-int-or-string"):
        # Optional[X] is "X or null"; Kubernetes expresses optional by absence from `required`.
        not_null = [option for option in anyof if option != {"type": "null"}]
        if len(not_null) != 1:
            raise SchemaConversionError(f"{where}: anyOf that is not Optional[X]: {anyof}")
        del merged["anyOf"]
        merged = {**_resolve(not_null[0], definitions, where), **merged}
    return merged


def _convert(node: Mapping[str, Any], definitions: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    resolved = _resolve(node, definitions, where)
    unknown = set(resolved) - _HANDLED_KEYS
    if unknown:
        raise SchemaConversionError(f"{where}: unsupported schema keys {sorted(unknown)}")

    result = {key: value for key, value in resolved.items() if key in _COPIED_KEYS}
    if "description" in result:
        # Docstrings wrap lines; `kubectl explain` re-wraps text itself.
        result["description"] = " ".join(result["description"].split())
    if "const" in resolved:
        result["enum"] = [resolved["const"]]
        result.setdefault("type", "string")
    if "exclusiveMinimum" in resolved or "exclusiveMaximum" in resolved:
        raise SchemaConversionError(f"{where}: use ge/le bounds, not gt/lt (OpenAPI v3.0 differs)")

    default = resolved.get("default")
    # Empty collections and None are what absence already means; spelling them out as defaults
    # would only make the API server write noise into every object.
    if default is not None and default != [] and default != {}:
        result["default"] = default

    if "properties" in resolved:
        result["type"] = "object"
        result["properties"] = {
            name: _convert(child, definitions, where=f"{where}.{name}")
            for name, child in resolved["properties"].items()
        }
    if "items" in resolved:
        result["items"] = _convert(resolved["items"], definitions, where=f"{where}[]")

    additional = resolved.get("additionalProperties")
    if additional is True or (
        resolved.get("type") == "object" and "properties" not in resolved and not additional
    ):
        result["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(additional, Mapping):
        result["additionalProperties"] = _convert(additional, definitions, where=f"{where}{{}}")
    # additionalProperties: false (extra="forbid") is the structural default: unknown fields
    # are pruned, or refused under kubectl's strict field validation.

    if "type" not in result and not result.get("x-kubernetes-int-or-string"):
        raise SchemaConversionError(f"{where}: no type")
    if "anyOf" in resolved:
        result["anyOf"] = resolved["anyOf"]
    return result


def missing_descriptions(schema: Mapping[str, Any], path: str = "") -> list[str]:
    """Paths of properties (and array items of objects) that ``kubectl explain`` would leave
    undocumented. Empty means every field is described. The root ``metadata`` is exempt: the
    API server forbids a description there and documents ObjectMeta itself."""
    missing: list[str] = []
    for name, child in schema.get("properties", {}).items():
        child_path = f"{path}.{name}"
        if not child.get("description") and child_path != ".metadata":
            missing.append(child_path)
        missing.extend(missing_descriptions(child, child_path))
    if "items" in schema:
        missing.extend(missing_descriptions(schema["items"], f"{path}[]"))
    if isinstance(schema.get("additionalProperties"), Mapping):
        missing.extend(missing_descriptions(schema["additionalProperties"], f"{path}{{}}"))
    return missing
