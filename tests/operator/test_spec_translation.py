"""One translation from TradingAgent spec to agent settings: the operator's Deployment env and
``sapphire up`` both come from ``agents.settings.spec_settings``, and an agent started without
a setting behaves as the CRD's default says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sapphire.agents.settings import AgentSettings, spec_settings
from sapphire.operator import builders
from sapphire.operator.settings import OperatorSettings
from sapphire.resources import tradingagent
from sapphire.up import plan, setup

CRD = Path(__file__).resolve().parents[2] / "crds" / "tradingagents.yaml"
REQUIRED = {"agent_name", "role", "model_provider", "model_name"}
"""Settings of spec fields that have no default: the spec always names them."""


def with_crd_defaults(raw: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with every default the CRD declares filled in, as the API server fills them."""
    filled = dict(raw)
    for field, prop in (schema.get("properties") or {}).items():
        if field not in filled and "default" in prop:
            filled[field] = prop["default"]
        if isinstance(filled.get(field), dict) and prop.get("type") == "object":
            filled[field] = with_crd_defaults(filled[field], prop)
    return filled


def test_every_setting_a_spec_field_defaults_agrees_with_the_crds_default() -> None:
    crd = yaml.safe_load(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    raw = with_crd_defaults({"role": "sentiment", "model": {"provider": "vertex", "name": "gemini"}}, schema)
    fields = spec_settings(name="defaults", spec=tradingagent.TradingAgentSpec.model_validate(raw))
    compared = 0
    for field, value in fields.items():
        if field in REQUIRED:
            continue
        declared = AgentSettings.model_fields[field]
        default = declared.default_factory() if declared.default_factory else declared.default  # type: ignore[call-arg]
        assert default == value, f"AgentSettings.{field} defaults to {default!r}, the CRD to {value!r}"
        compared += 1
    assert compared >= 4, fields  # symbols, intervalSeconds, model timeoutSeconds and maxCallsPerMinute


SPEC = tradingagent.TradingAgentSpec.model_validate(
    {
        "role": "executor",
        "symbols": ["BTC-USD", "ETH-USD"],
        "intervalSeconds": 15,
        "model": {"provider": "openai-compatible", "name": "grok-4", "endpoint": "https://api.x.ai/v1",
                  "timeoutSeconds": 12, "maxCallsPerMinute": 7},
        "risk": {"maxOrderNotional": "1000", "maxPositionNotional": "5000", "maxGrossExposure": "9000",
                 "maxDailyLoss": "300", "stopLossBps": "150", "takeProfitBps": "300.5"},
    }
)  # fmt: skip


def test_the_deployment_env_reads_back_as_the_specs_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = builders.agent_env(name="grok", spec=SPEC, settings=OperatorSettings())
    for variable in env:
        if "value" in variable:
            monkeypatch.setenv(variable["name"], variable["value"])
    monkeypatch.setenv("SAPPHIRE_AGENT_TOKEN", "token")  # a secretKeyRef in the pod
    read = AgentSettings()
    for field, value in spec_settings(name="grok", spec=SPEC).items():
        assert getattr(read, field) == value, field


def test_sapphire_up_uses_the_same_translation(tmp_path: Path) -> None:
    document = {"apiVersion": "trading.sapphire-ai.com/v1alpha1", "kind": "TradingAgent",
                "metadata": {"name": "grok"}, "spec": SPEC.to_wire()}  # fmt: skip
    (tmp_path / "grok.yaml").write_text(yaml.safe_dump(document))
    (local,) = plan.load_plan(tmp_path).agents
    options = setup.Options(path=tmp_path)
    settings = setup.agent_settings(
        local, options, setup.choose_stores(options, {}), setup.choose_tokens({}), "p:"
    )
    for field, value in spec_settings(name="grok", spec=SPEC).items():
        if field != "model_provider":  # `sapphire up` calls no model, and says so in a notice
            assert getattr(settings, field) == value, field
    assert settings.model_provider == ""
