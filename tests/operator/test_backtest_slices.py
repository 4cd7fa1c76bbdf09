"""A BacktestRun's period split into slices, and their figures chained, without a cluster."""

from __future__ import annotations

import datetime
import itertools
from decimal import Decimal
from typing import Any

import pytest

from sapphire.domain.headline import Headline, chain
from sapphire.operator import backtests, migrations, payloads
from sapphire.resources import backtestrun

START = datetime.datetime(2026, 1, 5, 0, 30, tzinfo=datetime.UTC)
NOW = datetime.datetime(2026, 1, 5, 12, 0, tzinfo=datetime.UTC)
MINUTE = datetime.timedelta(minutes=1)


def spec(**fields: Any) -> dict[str, Any]:
    return {
        "agents": [{"name": "momo", "tradingAgentRef": "momentum"}],
        "data": {"url": "https://data.example/bars.csv"},
        "start": START.isoformat(),
        "end": (START + 60 * MINUTE).isoformat(),
        **fields,
    }


def run(**fields: Any) -> payloads.BacktestRun:
    return {
        "metadata": {"name": "bt", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": spec(**fields),
        "status": {"phase": "Running"},
    }


def attempt(number: int, *, exit_code: int | None = None, message: str = "") -> migrations.Attempt:
    return migrations.Attempt(
        number, f"bt-{number}", f"uid-{number}", NOW - MINUTE, exit_code=exit_code, message=message
    )


def succeeded(number: int, total_return: str) -> migrations.Attempt:
    headline = Headline(
        total_return=total_return, sharpe="1.5", max_drawdown="0.01", trades=1, fees="0.1", quotes=10
    )
    return attempt(number, exit_code=0, message=headline.to_json())


class TestSlices:
    def test_slices_are_contiguous_bar_aligned_and_differ_by_at_most_one_bar(self) -> None:
        split = backtestrun.BacktestRunSpec.model_validate(
            spec(end=(START + 60.5 * MINUTE).isoformat(), parallelism=7)
        )
        slices = split.slices()
        assert [s.number for s in slices] == list(range(1, 8))
        assert (slices[0].start, slices[-1].end) == (split.start, split.end)
        for before, after in itertools.pairwise(slices):
            assert before.end == after.start
        lengths = [s.end - s.start for s in slices if s.end is not None and s.start is not None]
        assert set(lengths[:-1]) == {8 * MINUTE, 9 * MINUTE}  # 60 whole bars in 7 slices
        assert lengths[-1] == 9.5 * MINUTE  # the part bar goes to the last

    def test_parallelism_one_is_the_whole_period_even_without_one(self) -> None:
        whole = backtestrun.BacktestRunSpec.model_validate({**spec(), "start": None, "end": None})
        assert whole.slices() == [backtestrun.PeriodSlice(1, None, None)]

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"parallelism": 2, "end": None}, "parallelism above 1 needs start and end"),
            (
                {"parallelism": 7, "timeframeSeconds": 600},
                "parallelism must not exceed the bars of timeframeSeconds",
            ),
            ({"parallelism": 0}, "parallelism"),
            ({"parallelism": 33}, "parallelism"),
        ],
    )
    def test_a_split_needs_a_period_of_at_least_one_bar_per_slice(
        self, fields: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            backtestrun.BacktestRunSpec.model_validate(spec(**fields))


class TestChain:
    def test_returns_compound_exactly_then_round_half_even_like_the_report(self) -> None:
        parts = [
            Headline(total_return="0.000001", max_drawdown="0.02", trades=2, fees="0.1", quotes=5),
            Headline(total_return="0.5", max_drawdown="0.10", trades=3, fees="0.2", quotes=7),
        ]
        chained = chain(parts)
        # 1.000001 * 1.5 - 1 = 0.5000015, half-even to six places: 0.500002
        assert chained.total_return == "0.500002"
        assert (chained.trades, chained.fees, chained.quotes) == (5, "0.3", 12)  # never 0.30000000000000004
        assert chained.max_drawdown == "0.10"
        assert (chained.sharpe, chained.final_equity) == (None, None)

    def test_losses_compound_too(self) -> None:
        parts = [Headline(total_return="-0.5"), Headline(total_return="-0.5"), Headline(total_return="1")]
        assert Decimal(str(chain(parts).total_return)) == Decimal("-0.5")

    def test_a_failed_slice_cannot_be_chained(self) -> None:
        with pytest.raises(ValueError, match="successful slices"):
            chain([Headline(total_return="0.1"), Headline(error="boom")])


class TestDecide:
    def test_the_first_reconcile_creates_one_pod_per_slice(self) -> None:
        decision = backtests.decide(run=run(parallelism=3), attempts={}, missing_agents=[], now=NOW)
        assert list(decision.create) == [1, 2, 3]
        assert [entry["podName"] for entry in decision.status["slices"]] == ["bt-1", "bt-2", "bt-3"]
        assert "podName" not in decision.status

    def test_a_slice_left_uncreated_by_a_crash_is_created_and_no_other(self) -> None:
        decision = backtests.decide(
            run=run(parallelism=2), attempts={1: attempt(1)}, missing_agents=[], now=NOW
        )
        assert list(decision.create) == [2]
        assert decision.status["phase"] == "Running"

    def test_a_failed_slice_fails_the_run_and_stops_the_others(self) -> None:
        attempts = {1: attempt(1), 2: attempt(2, exit_code=2, message="boom"), 3: succeeded(3, "0.1")}
        decision = backtests.decide(run=run(parallelism=3), attempts=attempts, missing_agents=[], now=NOW)
        assert decision.status["phase"] == "Failed"
        assert decision.status["message"] == (
            "slice 2 of 3 (2026-01-05T00:50:00Z to 2026-01-05T01:10:00Z) failed: exit code 2: boom"
        )
        assert decision.kill_pods == ("bt-1",)
        phases = [(entry["phase"], entry.get("message")) for entry in decision.status["slices"]]
        assert phases[0] == ("Failed", "stopped: slice 2 failed")
        assert phases[2][0] == "Succeeded"
        assert "totalReturn" not in decision.status

    def test_a_slice_past_its_deadline_fails_the_run(self) -> None:
        late = migrations.Attempt(1, "bt-1", "uid-1", NOW - datetime.timedelta(hours=2))
        attempts = {1: late, 2: succeeded(2, "0.1")}
        decision = backtests.decide(run=run(parallelism=2), attempts=attempts, missing_agents=[], now=NOW)
        assert decision.status["phase"] == "Failed"
        assert "activeDeadlineSeconds=3600" in decision.status["message"]
        assert decision.kill_pods == ("bt-1",)

    def test_the_run_succeeds_with_every_slice_and_chains_them(self) -> None:
        attempts = {1: succeeded(1, "0.1"), 2: succeeded(2, "-0.1")}
        decision = backtests.decide(run=run(parallelism=2), attempts=attempts, missing_agents=[], now=NOW)
        assert decision.status["phase"] == "Succeeded"
        assert decision.status["totalReturn"] == "-0.010000"  # 1.1 * 0.9 - 1
        assert (decision.status["trades"], decision.status["fees"]) == (2, "0.2")
        assert "sharpe" not in decision.status
        assert [entry["sharpe"] for entry in decision.status["slices"]] == ["1.5", "1.5"]

    def test_a_single_slice_run_reports_as_it_always_did(self) -> None:
        decision = backtests.decide(run=run(), attempts={1: succeeded(1, "0.1")}, missing_agents=[], now=NOW)
        assert decision.status["podName"] == "bt-1"
        assert "slices" not in decision.status
        assert (decision.status["totalReturn"], decision.status["sharpe"]) == ("0.1", "1.5")
