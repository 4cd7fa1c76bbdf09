"""The CRDs in crds/ are exactly what the generator writes, and they are structural and documented."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pydantic
import pytest
import typer.testing
import yaml

from sapphire import cli
from sapphire.resources import crdgen, schema
from tests.crds.conftest import CRDS

RESOURCES = {resource.kind: resource for resource in crdgen.RESOURCES}


def root_schema(kind: str) -> dict[str, Any]:
    crd = crdgen.build_crd(RESOURCES[kind])
    result: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return result


def nodes(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema node with its path."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    if "items" in node:
        yield from nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from nodes(node["additionalProperties"], f"{path}{{}}")


class TestDrift:
    def test_committed_crds_are_what_the_generator_writes_now(self) -> None:
        committed = {path.name: path.read_text() for path in CRDS.glob("*.yaml")}
        assert committed == crdgen.rendered_crds(), "crds/ is stale: run `make crds` and commit the result"

    def test_the_cli_writes_the_same_files(self, tmp_path: Path) -> None:
        result = typer.testing.CliRunner().invoke(cli.app, ["crds", "generate", "--out", str(tmp_path)])
        assert result.exit_code == 0, result.output
        assert {path.name: path.read_text() for path in tmp_path.iterdir()} == crdgen.rendered_crds()

    def test_generation_is_deterministic(self) -> None:
        assert crdgen.rendered_crds() == crdgen.rendered_crds()

    def test_the_files_are_valid_crd_yaml(self) -> None:
        for text in crdgen.rendered_crds().values():
            crd = yaml.safe_load(text)
            assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
            assert crd["kind"] == "CustomResourceDefinition"


@pytest.mark.parametrize("kind", sorted(RESOURCES))
class TestSchema:
    def test_every_field_has_a_description_for_kubectl_explain(self, kind: str) -> None:
        assert schema.missing_descriptions(root_schema(kind)) == []

    def test_the_schema_is_structural(self, kind: str) -> None:
        for path, node in nodes(root_schema(kind)):
            assert not {"$ref", "$defs", "allOf", "oneOf", "not", "title", "additionalItems"} & set(node), (
                path
            )
            if "anyOf" in node:
                assert node.get("x-kubernetes-int-or-string") is True, path
            else:
                assert "type" in node, f"{path} has no type"
            assert not ("properties" in node and "additionalProperties" in node), path
            assert node.get("default", "") is not None, f"{path} defaults to null"

    def test_no_field_is_a_float(self, kind: str) -> None:
        for path, node in nodes(root_schema(kind)):
            assert node.get("type") != "number", f"{path} is a float; use a decimal string"

    def test_every_cel_rule_explains_itself(self, kind: str) -> None:
        rules = [
            rule for _, node in nodes(root_schema(kind)) for rule in node.get("x-kubernetes-validations", [])
        ]
        assert rules
        assert all(rule["message"] and rule["rule"] for rule in rules)

    def test_the_crd_has_a_status_subresource_short_name_and_category(self, kind: str) -> None:
        crd = crdgen.build_crd(RESOURCES[kind])
        assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
        assert crd["spec"]["names"]["categories"] == ["sapphire"]
        assert len(crd["spec"]["names"]["shortNames"]) == 1


def test_money_fields_are_decimal_strings_with_a_pattern() -> None:
    ta = root_schema("TradingAgent")["properties"]
    money = {**ta["spec"]["properties"]["risk"]["properties"]}
    money.update(
        {name: ta["status"]["properties"][name] for name in ("realizedPnl", "unrealizedPnl", "grossExposure")}
    )
    for name, node in money.items():
        assert node["type"] == "string", name
        assert node["pattern"].startswith("^"), name


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        ("TradingAgent", ["Role", "Symbols", "Model", "Phase", "Ready", "Last-Signal", "Age"]),
        ("MigrationRun", ["Target", "Phase", "From", "To", "Attempts", "Age"]),
    ],
)
def test_printer_columns_are_the_designed_ones(kind: str, columns: list[str]) -> None:
    crd = crdgen.build_crd(RESOURCES[kind])
    default_columns = [
        column["name"]
        for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]
        if not column.get("priority")
    ]
    assert default_columns == columns


def test_the_symbols_column_reads_the_summary_the_operator_writes() -> None:
    crd = crdgen.build_crd(RESOURCES["TradingAgent"])
    (symbols,) = [c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"] if c["name"] == "Symbols"]
    assert symbols["jsonPath"] == ".status.symbolsSummary"


class TestConverter:
    def test_a_union_with_no_structural_form_is_refused(self) -> None:
        class Loose(pydantic.BaseModel):
            value: int | str

        with pytest.raises(schema.SchemaConversionError, match="value"):
            schema.structural_schema(Loose)

    def test_a_float_bound_that_openapi_spells_differently_is_refused(self) -> None:
        class Open(pydantic.BaseModel):
            value: int = pydantic.Field(gt=0)

        with pytest.raises(schema.SchemaConversionError, match="value"):
            schema.structural_schema(Open)

    def test_optional_fields_are_not_required_and_not_nullable(self) -> None:
        class Optional(pydantic.BaseModel):
            """A model."""

            value: str | None = pydantic.Field(default=None, description="A value.")

        assert schema.structural_schema(Optional) == {
            "type": "object",
            "description": "A model.",
            "properties": {"value": {"type": "string", "description": "A value."}},
        }
