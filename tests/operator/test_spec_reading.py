"""Reading an admitted spec: unknown fields (a newer CRD's) are dropped and named; a known
field this operator cannot use makes the spec invalid, naming the field."""

from __future__ import annotations

import pytest

from sapphire.operator import specs
from sapphire.resources import tradingagent

Spec = tradingagent.TradingAgentSpec


def test_a_spec_this_operator_knows_entirely_is_read_as_it_is() -> None:
    reading = specs.read_spec(Spec, {"role": "momentum", "symbols": ["BTC-USD"]})
    assert reading.ignored == ()
    assert reading.spec.role is tradingagent.Role.MOMENTUM


def test_unknown_fields_are_ignored_and_named_at_every_depth() -> None:
    raw = {
        "role": "sentiment",
        "futureField": {"a": 1},
        "model": {"provider": "openai-compatible", "name": "grok", "endpoint": "http://llm:8000/v1",
                  "futureKnob": 3},
    }  # fmt: skip
    reading = specs.read_spec(Spec, raw)
    assert set(reading.ignored) == {"spec.futureField", "spec.model.futureKnob"}
    assert reading.spec.model is not None
    assert reading.spec.model.name == "grok"
    assert "futureField" in raw, "the input is not modified"


def test_a_value_this_operator_cannot_use_names_its_field() -> None:
    with pytest.raises(specs.InvalidSpecError) as caught:
        specs.read_spec(Spec, {"role": "arbitrage", "futureField": 1})
    assert caught.value.fields == ("spec.role",)
    assert str(caught.value).startswith("spec.role: Input should be 'momentum'")
    assert "arbitrage" not in str(caught.value), "input values stay out of events and status"


def test_field_paths_show_list_indices() -> None:
    assert specs.field_path(("env", 0, "name")) == "spec.env[0].name"
