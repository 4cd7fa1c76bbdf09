"""Reading TradingAgent YAML for ``sapphire up``: the examples run as they are, what a laptop
cannot honour becomes a notice, and a bad file or field is one line naming both."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from sapphire.up import plan, setup

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


AGENT = """\
apiVersion: trading.sapphire-ai.com/v1alpha1
kind: TradingAgent
metadata: {{name: {name}}}
spec:
  role: {role}
  symbols: [BTC-USD]
{extra}
"""


def agent(name: str = "momo", role: str = "momentum", extra: str = "") -> str:
    return AGENT.format(name=name, role=role, extra=extra)


def test_the_examples_become_seven_agents_and_skip_the_migration_runs_with_a_notice() -> None:
    loaded = plan.load_plan(EXAMPLES)
    assert {a.name: a.role for a in loaded.agents} == {
        "executor": "executor",
        "mean-reversion": "mean-reversion",
        "microstructure-all-market": "microstructure",
        "momentum": "momentum",
        "sentiment-grok": "sentiment",
        "strategist-vertex": "strategist",
        "volatility": "volatility",
    }
    assert loaded.symbols == ("BTC-USD", "ETH-USD", "SOL-USD")
    skipped = [n for n in loaded.notices if n.startswith("skipped")]
    assert len(skipped) == 2
    assert all("MigrationRun" in n for n in skipped)
    refusals = [n for n in loaded.notices if "spec.model" in n]
    assert len(refusals) == 2
    assert any("sentiment-grok" in n and "openai-compatible/grok-4" in n for n in refusals)
    assert all("runs without a model (deterministic analysis)" in n for n in refusals)


def test_the_executor_gets_spec_risk_as_its_limits_and_time_scales_with_speed() -> None:
    loaded = plan.load_plan(EXAMPLES)
    (executor,) = loaded.executors
    options = setup.Options(path=EXAMPLES, speed=10)
    stores = setup.choose_stores(options, {})
    tokens = setup.choose_tokens({})
    settings = setup.agent_settings(executor, options, stores, tokens, "sapphire:")
    assert settings.role == "executor"
    assert settings.risk_max_order_notional == Decimal("1000")
    assert settings.risk_max_position_notional == Decimal("5000")
    assert settings.risk_max_gross_exposure == Decimal("12000")
    assert settings.risk_max_daily_loss == Decimal("500")
    assert settings.model_provider == ""
    momentum = next(a for a in loaded.agents if a.name == "momentum")
    assert setup.agent_settings(momentum, options, stores, tokens, "p:").interval_seconds == 3.0


def test_stores_default_to_sqlite_and_the_in_process_bus_and_follow_the_environment(tmp_path: Path) -> None:
    options = setup.Options(path=EXAMPLES, database_file=tmp_path / "local.db")
    embedded = setup.choose_stores(options, {})
    assert embedded.database_url == f"sqlite+aiosqlite:///{tmp_path / 'local.db'}"
    assert embedded.in_process_bus
    real = setup.choose_stores(
        options, {"DATABASE_URL": "postgresql://u:secret@db/trading", "REDIS_URL": "redis://cache:6379/0"}
    )
    assert (real.database_url, real.redis_url) == ("postgresql://u:secret@db/trading", "redis://cache:6379/0")
    assert "secret" not in real.description


def test_tokens_are_fresh_unless_all_three_are_given() -> None:
    first, second = setup.choose_tokens({}), setup.choose_tokens({"SAPPHIRE_READ_TOKEN": "only-one"})
    assert first.generated
    assert second.generated
    assert len({first.read, first.agent, first.admin, second.read}) == 4
    given = setup.choose_tokens(
        {"SAPPHIRE_READ_TOKEN": "r", "SAPPHIRE_AGENT_TOKEN": "a", "SAPPHIRE_ADMIN_TOKEN": "x"}
    )
    assert (given.read, given.agent, given.admin, given.generated) == ("r", "a", "x", False)


def test_paused_agents_and_other_kinds_are_skipped_with_a_notice(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", agent("runs") + "---\n" + agent("sleeps", extra="  paused: true"))
    write(tmp_path, "b.yml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {}\n")
    loaded = plan.load_plan(tmp_path)
    assert [a.name for a in loaded.agents] == ["runs"]
    assert any("sleeps: spec.paused is true" in n for n in loaded.notices)
    assert any("b.yml" in n and "'ConfigMap' is not a Sapphire resource" in n for n in loaded.notices)
    assert any("no executor" in n for n in loaded.notices)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            agent(extra="  intervalSeconds: 2"),
            "TradingAgent 'momo': spec.intervalSeconds: Input should",
        ),
        (
            agent(role="executor"),
            "TradingAgent 'momo': spec: risk is required when role is executor",
        ),
        (
            agent(
                role="executor",
                extra='  risk: {maxOrderNotional: "x", maxPositionNotional: "1",'
                ' maxGrossExposure: "1", maxDailyLoss: "1"}',
            ),
            "bad.yaml: TradingAgent 'momo': spec.risk.maxOrderNotional: must match",
        ),
        (agent(extra="  colour: blue"), "spec.colour: Extra inputs are not permitted"),
        ("kind: TradingAgent\nspec: [unclosed\n", "bad.yaml:3: not valid YAML"),
        ("- just\n- a list\n", "bad.yaml: expected a mapping with apiVersion, kind, metadata and spec"),
        (agent() + "---\n" + agent(), "bad.yaml (document 2): metadata.name: TradingAgent 'momo' is also"),
    ],
)
def test_a_bad_file_or_field_is_one_line_naming_both(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(plan.PlanError) as raised:
        plan.load_plan(path)
    message = str(raised.value)
    assert "\n" not in message
    assert expected in message
    assert message.startswith(str(path))


def test_a_missing_path_or_an_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(plan.PlanError, match="no such file or directory"):
        plan.load_plan(tmp_path / "nope")
    with pytest.raises(plan.PlanError, match=r"no \*\.yaml or \*\.yml files"):
        plan.load_plan(tmp_path)
