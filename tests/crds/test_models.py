"""The spec models accept the examples and refuse what the API server refuses, naming the field."""

from __future__ import annotations

import datetime
import decimal
import re
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from sapphire.domain import migration
from sapphire.resources import backtestrun, common, manifests, migrationrun, tradingagent
from tests.crds.conftest import EXAMPLES, INVALID

EXAMPLE_FILES = manifests.manifest_files(EXAMPLES)
INVALID_FILES = sorted(INVALID.glob("*.yaml"))


def examples() -> list[manifests.SapphireResource]:
    return [manifests.parse_resource(document) for document in manifests.load_documents(EXAMPLES)]


def agents() -> list[tradingagent.TradingAgent]:
    return [resource for resource in examples() if isinstance(resource, tradingagent.TradingAgent)]


def runs() -> list[migrationrun.MigrationRun]:
    return [resource for resource in examples() if isinstance(resource, migrationrun.MigrationRun)]


def expected_message(path: Path) -> str:
    match = re.search(r"^# expect: (.+)$", path.read_text(), re.M)
    assert match, f"{path.name} has no '# expect:' line"
    return match.group(1).strip()


def offending_field(message: str) -> str:
    """The last name of the field an expected API-server message names (spec.risk.maxDailyLoss
    -> maxDailyLoss; spec.symbols[1] -> symbols)."""
    match = re.search(r"(?:spec|metadata)(?:\.[A-Za-z]+|\[\d+\])*", message)
    assert match, f"no field path in {message!r}"
    return re.sub(r"\[\d+\]", "", match.group(0)).rsplit(".", 1)[-1]


class TestExamples:
    @pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.name)
    def test_every_example_is_a_valid_sapphire_resource(self, path: Path) -> None:
        for document in manifests.load_documents(path):
            manifests.parse_resource(document)

    def test_there_is_one_agent_per_role(self) -> None:
        assert sorted(agent.spec.role for agent in agents()) == sorted(tradingagent.Role)

    def test_one_analyst_runs_in_all_market_mode(self) -> None:
        all_market = [agent for agent in agents() if agent.spec.is_all_market]
        assert len(all_market) == 1
        assert not all_market[0].spec.is_executor
        assert all_market[0].spec.symbols_summary() == "ALL"

    def test_one_agent_uses_vertex_and_one_uses_grok_through_its_openai_compatible_api(self) -> None:
        models = [agent.spec.model for agent in agents() if agent.spec.model is not None]
        providers = {model.provider: model for model in models}
        assert set(providers) == set(tradingagent.ModelProvider)
        grok = providers[tradingagent.ModelProvider.OPENAI_COMPATIBLE]
        assert grok.endpoint == "https://api.x.ai/v1"
        assert grok.api_key_secret_ref is not None

    def test_the_executor_has_risk_limits_as_exact_decimals(self) -> None:
        (executor,) = [agent for agent in agents() if agent.spec.is_executor]
        assert executor.spec.risk is not None
        assert executor.spec.risk.max_order_notional == decimal.Decimal("1000")

    def test_examples_use_the_symbols_the_local_feed_simulates(self) -> None:
        symbols = {symbol for agent in agents() for symbol in agent.spec.symbols}
        assert symbols == {"BTC-USD", "ETH-USD", "SOL-USD"}

    def test_migration_runs_go_to_head_and_to_a_revision_through_a_native_sidecar(self) -> None:
        by_target = {run.spec.targets_head: run for run in runs()}
        assert set(by_target) == {True, False}
        (sidecar,) = by_target[False].spec.sidecars
        assert sidecar.restart_policy == "Always"
        assert "cloud-sql-proxy" in sidecar.image
        assert "startupProbe" in sidecar.to_wire()

    def test_the_backtestrun_examples_are_valid(self) -> None:
        backtest = EXAMPLES.parent / "backtest" / "backtestrun-examples.yaml"
        day, grid = [manifests.parse_resource(document) for document in manifests.load_documents(backtest)]
        assert isinstance(day, backtestrun.BacktestRun)
        assert [agent.name for agent in day.spec.agents] == ["momentum", "executor"]
        assert isinstance(grid, backtestrun.BacktestRun)
        assert len(grid.spec.trials()) == 9
        assert grid.spec.slices() == [backtestrun.PeriodSlice(1, grid.spec.start, grid.spec.end)]

    def test_examples_declare_no_namespace_so_they_apply_anywhere(self) -> None:
        assert all(resource.metadata.namespace is None for resource in examples())

    @pytest.mark.parametrize("resource", examples(), ids=lambda resource: resource.metadata.name)
    def test_the_wire_form_reads_back_as_the_same_spec(self, resource: manifests.SapphireResource) -> None:
        assert type(resource.spec).model_validate(resource.spec.to_wire()) == resource.spec


class TestInvalidCorpus:
    def test_the_corpus_has_at_least_25_manifests(self) -> None:
        assert len(INVALID_FILES) >= 25

    @pytest.mark.parametrize("path", INVALID_FILES, ids=lambda path: path.stem)
    def test_python_refuses_what_the_api_server_refuses_and_names_the_field(self, path: Path) -> None:
        (document,) = list(yaml.safe_load_all(path.read_text()))
        field = offending_field(expected_message(path))
        with pytest.raises(pydantic.ValidationError) as refused:
            manifests.parse_resource(document)
        assert field in str(refused.value)


class TestDecimalStrings:
    LIMITS: dict[str, Any] = {
        "maxOrderNotional": "1000",
        "maxPositionNotional": "5000.50",
        "maxGrossExposure": "10000",
        "maxDailyLoss": "250.25",
    }

    def test_money_is_decimal_in_python_and_a_string_on_the_wire(self) -> None:
        limits = tradingagent.RiskLimits.model_validate(self.LIMITS)
        assert limits.max_position_notional == decimal.Decimal("5000.50")
        assert limits.to_wire() == self.LIMITS

    @pytest.mark.parametrize(
        "value", [1000.5, 1000, "1e3", "-5", "1,000", " 100", "12345678901234567890123456789.1234"]
    )
    def test_floats_integers_and_odd_spellings_are_refused(self, value: object) -> None:
        with pytest.raises(pydantic.ValidationError, match="maxOrderNotional"):
            tradingagent.RiskLimits.model_validate({**self.LIMITS, "maxOrderNotional": value})

    def test_pnl_may_be_negative(self) -> None:
        status = tradingagent.TradingAgentStatus.model_validate({"realizedPnl": "-12.5"})
        assert status.realized_pnl == decimal.Decimal("-12.5")


class TestTradingAgentSpec:
    def test_defaults(self) -> None:
        spec = tradingagent.TradingAgentSpec.model_validate({"role": "momentum"})
        assert (spec.interval_seconds, spec.paused, spec.symbols, spec.model) == (60, False, [], None)
        assert spec.is_all_market

    def test_snake_case_names_work_in_python(self) -> None:
        spec = tradingagent.TradingAgentSpec(role=tradingagent.Role.MOMENTUM, interval_seconds=10)
        assert spec.to_wire()["intervalSeconds"] == 10

    @pytest.mark.parametrize(
        ("symbols", "summary"),
        [
            ([], "ALL"),
            (["BTC-USD"], "BTC-USD"),
            (["BTC-USD", "ETH-USD", "SOL-USD"], "BTC-USD,ETH-USD,SOL-USD"),
            (["BTC-USD", "ETH-USD", "SOL-USD", "ADA-USD", "XRP-USD"], "BTC-USD,ETH-USD,SOL-USD,+2"),
        ],
    )
    def test_symbols_summary_is_what_the_symbols_column_shows(self, symbols: list[str], summary: str) -> None:
        assert tradingagent.summarize_symbols(symbols) == summary

    def test_a_status_from_the_model_serializes_camel_case_without_nulls(self) -> None:
        status = tradingagent.TradingAgentStatus(
            phase=tradingagent.TradingAgentPhase.RUNNING,
            symbols_summary="ALL",
            realized_pnl=decimal.Decimal("-3.10"),
        )
        assert status.to_wire() == {
            "phase": "Running",
            "symbolsSummary": "ALL",
            "realizedPnl": "-3.10",
            "conditions": [],
        }

    def test_status_written_by_a_newer_operator_still_reads(self) -> None:
        status = tradingagent.TradingAgentStatus.model_validate({"phase": "Running", "futureField": 1})
        assert status.phase is tradingagent.TradingAgentPhase.RUNNING

    def test_the_document_api_version_is_the_group_and_version(self) -> None:
        assert tradingagent.API_VERSION == "trading.sapphire-ai.com/v1alpha1"
        assert migrationrun.API_VERSION == tradingagent.API_VERSION


class TestMigrationRunSpec:
    def test_defaults_and_helpers(self) -> None:
        spec = migrationrun.MigrationRunSpec.model_validate(
            {
                "revision": "head",
                "database": {"name": "trading", "urlSecretRef": {"name": "db", "key": "url"}},
            }
        )
        assert spec.direction is migration.Direction.UPGRADE
        assert (spec.backoff_limit, spec.active_deadline_seconds, spec.ttl_seconds_after_finished) == (
            2,
            900,
            300,
        )
        assert spec.targets_head
        assert not spec.is_downgrade
        assert spec.lock_key == "trading"

    def test_a_consented_downgrade_to_base_is_valid(self) -> None:
        spec = migrationrun.MigrationRunSpec.model_validate(
            {
                "revision": "base",
                "direction": "downgrade",
                "allowDowngrade": True,
                "database": {"name": "trading", "urlSecretRef": {"name": "db", "key": "url"}},
            }
        )
        assert spec.is_downgrade

    def test_only_succeeded_and_failed_are_final(self) -> None:
        final = {phase for phase in migrationrun.MigrationRunPhase if phase.is_final}
        assert final == {migrationrun.MigrationRunPhase.SUCCEEDED, migrationrun.MigrationRunPhase.FAILED}


class TestConditions:
    T0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    T1 = T0 + datetime.timedelta(minutes=5)

    def ready(
        self, conditions: list[common.Condition], status: common.ConditionStatus, now: datetime.datetime
    ) -> list[common.Condition]:
        return common.set_condition(
            conditions,
            type="Ready",
            status=status,
            reason="DeploymentAvailable",
            message="",
            observed_generation=1,
            now=now,
        )

    def test_a_new_condition_is_added_with_the_current_time(self) -> None:
        (ready,) = self.ready([], common.ConditionStatus.TRUE, self.T0)
        assert ready.last_transition_time == self.T0

    def test_the_transition_time_moves_only_when_the_status_changes(self) -> None:
        first = self.ready([], common.ConditionStatus.TRUE, self.T0)
        same = self.ready(first, common.ConditionStatus.TRUE, self.T1)
        flipped = self.ready(first, common.ConditionStatus.FALSE, self.T1)
        assert common.find_condition(same, "Ready") == first[0]
        found = common.find_condition(flipped, "Ready")
        assert found is not None
        assert found.last_transition_time == self.T1

    def test_other_conditions_keep_their_place(self) -> None:
        progressing = common.set_condition(
            [],
            type="Progressing",
            status=common.ConditionStatus.TRUE,
            reason="Rolling",
            message="",
            observed_generation=1,
            now=self.T0,
        )
        both = self.ready(progressing, common.ConditionStatus.TRUE, self.T0)
        assert [condition.type for condition in both] == ["Progressing", "Ready"]
        assert both[1].to_wire()["lastTransitionTime"] == "2025-01-01T00:00:00Z"
