"""A BacktestRun's grid of agent parameters: its trials, their agents, and the best of them,
without a cluster."""

from __future__ import annotations

import typing
from typing import Any

import pydantic
import pytest
import yaml

from sapphire.domain.headline import Headline, best
from sapphire.operator import backtests, builders, migrations, payloads
from sapphire.operator.settings import OperatorSettings
from sapphire.resources import backtestrun
from tests.operator.test_backtest_slices import NOW, attempt

MOMENTUM: dict[str, Any] = {"role": "momentum", "symbols": ["BTC-USD"], "intervalSeconds": 60}
EXECUTOR: dict[str, Any] = {
    "role": "executor",
    "risk": {
        "maxOrderNotional": "1000",
        "maxPositionNotional": "5000",
        "maxGrossExposure": "12000",
        "maxDailyLoss": "500",
    },
}
INTERVALS = {"agent": "momentum", "parameter": "intervalSeconds", "values": ["30", "60"]}
STOPS = {"agent": "executor", "parameter": "risk.stopLossBps", "values": ["50", "100", "150"]}


def spec(**fields: Any) -> dict[str, Any]:
    return {
        "agents": [
            {"name": "momentum", "tradingAgentRef": "momentum"},
            {"name": "executor", "spec": EXECUTOR},
        ],
        "data": {"url": "https://data.example/bars.csv"},
        "start": "2026-01-05T00:00:00Z",
        "end": "2026-01-05T01:00:00Z",
        "grid": [INTERVALS, STOPS],
        **fields,
    }


def grid_spec(**fields: Any) -> backtestrun.BacktestRunSpec:
    return backtestrun.BacktestRunSpec.model_validate(spec(**fields))


def run(**fields: Any) -> payloads.BacktestRun:
    return {
        "metadata": {"name": "bt", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": spec(**fields),
        "status": {"phase": "Running"},
    }


def succeeded(number: int, total_return: str, sharpe: str | None = "1.5") -> migrations.Attempt:
    headline = Headline(
        total_return=total_return,
        sharpe=sharpe,
        max_drawdown="0.01",
        trades=number,
        fees="0.1",
        final_equity="10000",
        quotes=10,
    )
    return attempt(number, exit_code=0, message=headline.to_json())


class TestGrid:
    def test_trials_are_the_cartesian_product_the_last_axis_fastest(self) -> None:
        trials = grid_spec().trials()
        assert [trial.number for trial in trials] == [1, 2, 3, 4, 5, 6]
        assert [trial.label() for trial in trials[:4]] == [
            "momentum.intervalSeconds=30, executor.risk.stopLossBps=50",
            "momentum.intervalSeconds=30, executor.risk.stopLossBps=100",
            "momentum.intervalSeconds=30, executor.risk.stopLossBps=150",
            "momentum.intervalSeconds=60, executor.risk.stopLossBps=50",
        ]

    def test_a_grid_runs_the_whole_period_in_each_trial_and_parallelism_is_not_a_split(self) -> None:
        # 40 pods' worth of parallelism over a one-minute period would be refused for a split.
        gridded = grid_spec(parallelism=4, end="2026-01-05T00:01:00Z")
        assert gridded.slices() == [backtestrun.PeriodSlice(1, gridded.start, gridded.end)]
        assert grid_spec(start=None, end=None, parallelism=2).slices() == [
            backtestrun.PeriodSlice(1, None, None)
        ]

    def test_without_a_grid_there_are_no_trials(self) -> None:
        assert grid_spec(grid=None).trials() == []

    @pytest.mark.parametrize(
        ("grid", "message"),
        [
            ([{**INTERVALS, "values": [str(n) for n in range(30, 41)]}, STOPS], "at most 32 trials"),
            ([{**STOPS, "agent": "nobody"}], "each axis's agent must be the name of one of agents"),
            ([STOPS, {**STOPS, "values": ["20"]}], "duplicate grid axes: executor.risk.stopLossBps"),
            ([{**INTERVALS, "values": ["30", "30"]}], "duplicate values of intervalSeconds: 30"),
            ([{**INTERVALS, "values": ["30.5"]}], "values of intervalSeconds must be whole seconds"),
            ([{**STOPS, "values": ["1e3"]}], "values of a risk limit must be decimal strings"),
            ([{**STOPS, "parameter": "symbols"}], "parameter"),
            ([{**STOPS, "values": []}], "values"),
            ([], "grid"),
            ([INTERVALS] * 5, "grid"),
        ],
    )
    def test_a_malformed_grid_is_refused_naming_the_field(self, grid: list[Any], message: str) -> None:
        with pytest.raises(pydantic.ValidationError, match=message):
            grid_spec(grid=grid)


class TestTrialAgents:
    AGENTS = {"momentum": MOMENTUM, "executor": EXECUTOR}

    def trial(self, *axes: dict[str, Any], number: int = 1) -> backtestrun.Trial:
        return grid_spec(grid=list(axes)).trials()[number - 1]

    def test_each_setting_is_written_in_its_fields_wire_type_and_the_rest_is_kept(self) -> None:
        applied = builders.trial_agents(self.AGENTS, self.trial(INTERVALS, STOPS, number=2))
        assert applied["momentum"] == {**MOMENTUM, "intervalSeconds": 30}
        assert applied["executor"] == {**EXECUTOR, "risk": {**EXECUTOR["risk"], "stopLossBps": "100"}}
        assert self.AGENTS["executor"] == EXECUTOR  # the input is not changed
        assert "stopLossBps" not in EXECUTOR["risk"]

    def test_any_trials_agents_with_another_trials_settings_are_that_trials_agents(self) -> None:
        # What lets a trial created later be built from an earlier trial's pod.
        trials = grid_spec().trials()
        built = {trial.number: builders.trial_agents(self.AGENTS, trial) for trial in trials}
        for trial in trials:
            for other in built.values():
                assert builders.trial_agents(other, trial) == built[trial.number]

    @pytest.mark.parametrize(
        ("axis", "message"),
        [
            (
                {**INTERVALS, "values": ["1"]},
                "grid[0] (momentum.intervalSeconds=1): agent momentum: spec.intervalSeconds: "
                "Input should be greater than or equal to 5",
            ),
            (
                {**STOPS, "values": ["20000"]},
                "grid[0] (executor.risk.stopLossBps=20000): agent executor: spec.risk: Value error, "
                "stopLossBps must be greater than zero and less than 10000",
            ),
            (
                {**STOPS, "parameter": "risk.maxOrderNotional", "values": ["6000"]},
                "maxOrderNotional must not exceed maxPositionNotional",
            ),
            (
                {**STOPS, "agent": "momentum"},
                "grid[0] (momentum.risk.stopLossBps=50): agent momentum has no risk limits: "
                "only the executor has",
            ),
            (
                {**INTERVALS, "agent": "executor"},
                "grid[0] (executor.intervalSeconds=30): intervalSeconds is an analyst's",
            ),
        ],
    )
    def test_a_value_the_field_refuses_is_an_error_naming_the_axis(
        self, axis: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(ValueError, match=r"^grid\[0\] ") as refused:
            builders.trial_agents(self.AGENTS, self.trial(axis))
        assert message in str(refused.value)

    def test_settings_that_together_break_a_rule_name_both_axes(self) -> None:
        with_stop = {"executor": {**EXECUTOR, "risk": {**EXECUTOR["risk"], "stopLossBps": "50"}}}
        trailing = {**STOPS, "parameter": "risk.trailingStopBps", "values": ["80"]}
        with pytest.raises(ValueError, match="stopLossBps and trailingStopBps are exclusive"):
            builders.trial_agents({**self.AGENTS, **with_stop}, self.trial(trailing))
        both = self.trial(STOPS, {**trailing, "agent": "executor"})
        with pytest.raises(ValueError, match=r"^grid\[0\] .*, grid\[1\] .*: agent executor: "):
            builders.trial_agents(self.AGENTS, both)

    def test_a_trial_pod_is_labelled_with_its_trial_and_reports_apart_from_slices(self) -> None:
        gridded = grid_spec(reportClaimName="reports")
        trial = gridded.trials()[4]
        agents = builders.backtest_agents_yaml(builders.trial_agents(self.AGENTS, trial))
        pod = builders.build_backtest_pod(
            name="bt",
            namespace="ns",
            spec=gridded,
            period=gridded.slices()[0],
            agents_yaml=agents,
            settings=OperatorSettings(agent_image="registry.example/sapphire:1"),
            trial=trial,
        )
        assert pod["metadata"]["name"] == "bt-5"
        labels = pod["metadata"]["labels"]
        assert labels[builders.TRIAL_LABEL] == "5"
        assert builders.SLICE_LABEL not in labels
        (container,) = pod["spec"]["containers"]
        args = container["args"]
        assert args[args.index("--output") + 1] == "/report/bt/trial-5"
        assert (args[args.index("--from") + 1], args[args.index("--to") + 1]) == (
            "2026-01-05T00:00:00+00:00",
            "2026-01-05T01:00:00+00:00",
        )
        documents = {
            d["metadata"]["name"]: d["spec"] for d in yaml.safe_load_all(container["env"][0]["value"])
        }
        assert documents["momentum"]["intervalSeconds"] == 60
        assert documents["executor"]["risk"]["stopLossBps"] == "100"
        assert backtests.part_number(typing.cast(payloads.Pod, pod)) == 5


class TestBest:
    def test_the_highest_figure_wins_compared_as_decimals_and_a_tie_goes_to_the_first(self) -> None:
        trials = [Headline(total_return=r) for r in ("0.09", "0.1", "-0.5", "0.10")]
        assert best(trials, "total_return") == 1

    def test_a_trial_without_a_sharpe_is_not_ranked_by_it(self) -> None:
        trials = [Headline(total_return="0.5"), Headline(total_return="0.1", sharpe="-2")]
        assert best(trials, "sharpe") == 1
        assert best(trials[:1], "sharpe") is None

    def test_part_of_a_grid_has_no_best(self) -> None:
        with pytest.raises(ValueError, match="successful trials"):
            best([Headline(total_return="0.1"), Headline(error="boom")], "total_return")


class TestDecide:
    def decide(self, attempts: dict[int, migrations.Attempt], **fields: Any) -> backtests.Decision:
        return backtests.decide(run=run(**fields), attempts=attempts, missing_agents=[], now=NOW)

    def test_the_first_reconcile_starts_parallelism_trials_and_the_others_wait(self) -> None:
        decision = self.decide({}, parallelism=2)
        assert decision.create == (1, 2)
        trials = decision.status["trials"]
        assert [(t["trial"], t["phase"], t.get("podName")) for t in trials] == [
            (1, "Running", "bt-1"),
            (2, "Running", "bt-2"),
            (3, "Pending", None),
            (4, "Pending", None),
            (5, "Pending", None),
            (6, "Pending", None),
        ]
        assert trials[2]["message"] == "waiting for a free pod (parallelism 2)"
        assert trials[5]["parameters"] == [
            {"agent": "momentum", "parameter": "intervalSeconds", "value": "60"},
            {"agent": "executor", "parameter": "risk.stopLossBps", "value": "150"},
        ]
        assert decision.status["message"].endswith("through 2 agent(s) in 6 trials, 2 at a time")
        assert "podName" not in decision.status
        assert decision.event is not None
        assert decision.event[1] == "BacktestStarted"

    def test_a_finished_trial_frees_its_pod_for_the_next(self) -> None:
        decision = self.decide({1: succeeded(1, "0.1"), 2: attempt(2)}, parallelism=2)
        assert decision.create == (3,)
        assert decision.status["phase"] == "Running"
        assert decision.status["message"] == "1 of 6 trials finished"
        assert "bestTrial" not in decision.status

    def test_without_parallelism_the_trials_run_one_at_a_time(self) -> None:
        assert self.decide({}).create == (1,)
        assert self.decide({1: attempt(1)}).create == ()

    def test_a_failed_trial_fails_the_run_stops_the_running_and_starts_no_more(self) -> None:
        attempts = {1: succeeded(1, "0.1"), 2: attempt(2, exit_code=2, message="boom"), 3: attempt(3)}
        decision = self.decide(attempts, parallelism=2)
        assert decision.status["phase"] == "Failed"
        assert decision.status["message"] == (
            "trial 2 of 6 (momentum.intervalSeconds=30, executor.risk.stopLossBps=100) failed: "
            "exit code 2: boom"
        )
        assert decision.create == ()
        assert decision.kill_pods == ("bt-3",)
        phases = [(t["phase"], t.get("message")) for t in decision.status["trials"]]
        assert phases[0][0] == "Succeeded"
        assert phases[2] == ("Failed", "stopped: trial 2 failed")
        assert phases[3] == ("Failed", "not run: trial 2 failed")
        assert "totalReturn" not in decision.status
        assert "bestTrial" not in decision.status

    def test_the_run_succeeds_with_every_trial_and_its_figures_are_the_best_trials(self) -> None:
        returns = ["0.01", "-0.2", "0.05", "0.05", "0", "0.001"]
        attempts = {n: succeeded(n, r, sharpe=str(7 - n)) for n, r in enumerate(returns, start=1)}
        decision = self.decide(attempts, parallelism=6)
        status = decision.status
        assert status["phase"] == "Succeeded"
        assert status["bestTrial"] == 3  # trial 4 ties with it: the first wins
        assert (status["totalReturn"], status["sharpe"], status["trades"], status["finalEquity"]) == (
            "0.05",
            "4",
            3,
            "10000",
        )
        assert status["message"] == (
            "best of 6 trials by totalReturn: trial 3 of 6 (momentum.intervalSeconds=30, "
            "executor.risk.stopLossBps=150): return 0.05, sharpe 4, max drawdown 0.01, "
            "3 trades over 10 quotes"
        )
        assert [t["totalReturn"] for t in status["trials"]] == returns
        by_sharpe = self.decide(attempts, parallelism=6, objective="sharpe").status
        assert (by_sharpe["bestTrial"], by_sharpe["totalReturn"]) == (1, "0.01")

    def test_without_the_objectives_figure_in_any_trial_there_is_no_best(self) -> None:
        attempts = {n: succeeded(n, "0.1", sharpe=None) for n in range(1, 7)}
        status = self.decide(attempts, objective="sharpe").status
        assert status["phase"] == "Succeeded"
        assert status["message"] == "6 trials finished; none has a sharpe: no best trial"
        assert "bestTrial" not in status
        assert "totalReturn" not in status

    def test_a_grid_whose_trial_cannot_be_built_fails_before_any_pod(self) -> None:
        decision = backtests.decide(
            run=run(), attempts={}, missing_agents=[], now=NOW, invalid_grid="grid[0] (...): bad"
        )
        assert decision.status["phase"] == "Failed"
        assert decision.status["message"] == "grid[0] (...): bad"
        assert decision.create == ()
        assert "InvalidGrid" in {c["reason"] for c in decision.status["conditions"]}

    def test_a_referenced_agent_not_found_keeps_the_grid_pending(self) -> None:
        decision = backtests.decide(run=run(), attempts={}, missing_agents=["momentum"], now=NOW)
        assert decision.status["phase"] == "Pending"
        assert decision.create == ()

    def test_trials_agents_fail_naming_the_axis(self) -> None:
        bad = grid_spec(grid=[{**INTERVALS, "values": ["30", "2"]}])
        agents = {"momentum": MOMENTUM, "executor": EXECUTOR}
        with pytest.raises(ValueError, match=r"grid\[0\] \(momentum.intervalSeconds=2\)"):
            backtests.trials_agents(bad, agents)
        assert sorted(backtests.trials_agents(grid_spec(), agents)) == [1, 2, 3, 4, 5, 6]
