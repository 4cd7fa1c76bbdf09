"""Finished backtests on the API: the reports ``sapphire backtest -o DIR/NAME`` (or a BacktestRun
on its report claim) leaves under ``SAPPHIRE_BACKTEST_REPORTS_DIR``, listed with their headline
figures, each HTML report served behind the read token; a damaged report is listed with why."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from sapphire import cli
from sapphire.backtest import sample
from tests.trader_api.support import READ, make_settings, running_client

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


@pytest.fixture(scope="module")
def shelf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two finished backtests made by the real command, a damaged one, and a stray file."""
    root = tmp_path_factory.mktemp("backtests")
    bars = root.parent / "bars.csv"
    bars.write_text(sample.synthetic_bars(days=0.03), encoding="utf-8")
    for name in ("first-run", "second-run"):
        result = CliRunner().invoke(
            cli.app,
            ["backtest", "-f", str(EXAMPLES), "--data", str(bars), "-o", str(root / name), "--no-progress"],
        )
        assert result.exit_code == 0, result.output
    os.utime(root / "first-run" / "report.json", (1_700_000_000, 1_700_000_000))  # the older one
    # A BacktestRun split in two slices writes NAME/1 and NAME/2 (operator.builders); slice 2
    # still running has no report yet. Slice 1 is a copy of a real report.
    (root / "split-run" / "1").mkdir(parents=True)
    (root / "split-run" / "2").mkdir()
    for file in ("report.json", "report.html"):
        (root / "split-run" / "1" / file).write_bytes((root / "first-run" / file).read_bytes())
    os.utime(root / "split-run" / "1" / "report.json", (1_600_000_000, 1_600_000_000))  # the oldest
    # A grid of parameters writes NAME/trial-1, NAME/trial-2... (operator.builders); trial 2 is
    # still running. "trial-0" and "trial-x" are no trial's folder.
    for folder in ("trial-1", "trial-2", "trial-0", "trial-x"):
        (root / "grid-run" / folder).mkdir(parents=True)
    for file in ("report.json", "report.html"):
        (root / "grid-run" / "trial-1" / file).write_bytes((root / "second-run" / file).read_bytes())
        (root / "grid-run" / "trial-0" / file).write_bytes((root / "second-run" / file).read_bytes())
    os.utime(root / "grid-run" / "trial-1" / "report.json", (1_500_000_000, 1_500_000_000))
    (root / "damaged").mkdir()
    (root / "damaged" / "report.json").write_text('{"metrics": {}}', encoding="utf-8")
    (root / "notes.txt").write_text("not a backtest", encoding="utf-8")
    return root


@pytest.fixture
async def client(
    trader_database_url: str, redis_url: str, redis_prefix: str, shelf: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(trader_database_url, redis_url, redis_prefix, backtest_reports_dir=shelf)
    async with running_client(settings) as client:
        yield client


async def test_backtests_are_listed_newest_first_with_their_headline(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/backtests", headers=READ)
    assert response.status_code == 200, response.text
    listed = response.json()
    names = [(b["name"], b["slice"], b["trial"]) for b in listed]  # notes.txt is no backtest
    assert names == [
        ("damaged", None, None),
        ("second-run", None, None),
        ("first-run", None, None),
        ("split-run", 1, None),
        ("grid-run", None, 1),
    ]
    by_name = {b["name"]: b for b in listed}
    run = by_name["second-run"]
    assert run["error"] is None
    assert run["symbols"] == ["BTC-USD", "ETH-USD", "SOL-USD"]
    assert "executor" in run["agents"]
    assert run["quotes"] > 0
    assert run["total_return"] is not None
    assert run["report"] == "/v1/backtests/second-run/report.html"
    assert by_name["damaged"]["error"].startswith("report.json unreadable: no 'total_return'")
    assert by_name["damaged"]["report"] is None


async def test_a_slice_of_a_split_run_is_listed_and_served_as_its_own_backtest(
    client: httpx.AsyncClient,
) -> None:
    listed = {(b["name"], b["slice"]): b for b in (await client.get("/v1/backtests", headers=READ)).json()}
    first = listed[("split-run", 1)]
    assert first["trial"] is None
    assert first["report"] == "/v1/backtests/split-run/slices/1/report.html"
    assert first["total_return"] == listed[("first-run", None)]["total_return"]
    assert ("split-run", 2) not in listed  # still running: no report yet
    page = await client.get(first["report"], headers=READ)
    assert page.status_code == 200
    assert "Plotly.newPlot" in page.text
    running = await client.get("/v1/backtests/split-run/slices/2/report.html", headers=READ)
    assert running.status_code == 404
    assert "slice 2 of backtest 'split-run' has no HTML report" in running.json()["detail"]
    beyond = await client.get("/v1/backtests/split-run/slices/33/report.html", headers=READ)
    assert beyond.status_code == 422
    assert "slice" in beyond.text


async def test_a_trial_of_a_grid_is_listed_and_served_as_its_own_backtest(
    client: httpx.AsyncClient,
) -> None:
    listed = [b for b in (await client.get("/v1/backtests", headers=READ)).json() if b["name"] == "grid-run"]
    assert [(b["slice"], b["trial"]) for b in listed] == [(None, 1)]  # trial 2 still runs
    (trial,) = listed
    assert trial["report"] == "/v1/backtests/grid-run/trials/1/report.html"
    page = await client.get(trial["report"], headers=READ)
    assert page.status_code == 200
    assert "Plotly.newPlot" in page.text
    running = await client.get("/v1/backtests/grid-run/trials/2/report.html", headers=READ)
    assert running.status_code == 404
    assert "trial 2 of backtest 'grid-run' has no HTML report" in running.json()["detail"]
    for beyond in (0, 33):
        refused = await client.get(f"/v1/backtests/grid-run/trials/{beyond}/report.html", headers=READ)
        assert refused.status_code == 422
        assert "trial" in refused.text


async def test_a_report_is_served_behind_the_read_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/backtests/first-run/report.html")).status_code == 401
    page = await client.get("/v1/backtests/first-run/report.html", headers=READ)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Plotly.newPlot" in page.text
    missing = await client.get("/v1/backtests/damaged/report.html", headers=READ)
    assert missing.status_code == 404
    assert "has no HTML report" in missing.json()["detail"]


@pytest.mark.parametrize("name", ["..", "UPPER", "a%2F..%2Fb", ".hidden"])
async def test_a_name_outside_the_shelf_is_refused(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/v1/backtests/{name}/report.html", headers=READ)
    assert response.status_code in {404, 422}
    assert "Plotly" not in response.text


async def test_without_a_directory_nothing_is_listed(
    trader_database_url: str, redis_url: str, redis_prefix: str
) -> None:
    async with running_client(make_settings(trader_database_url, redis_url, redis_prefix)) as client:
        response = await client.get("/v1/backtests", headers=READ)
        assert response.status_code == 200
        assert response.json() == []
        missing = await client.get("/v1/backtests/any/report.html", headers=READ)
        assert missing.status_code == 404
        assert "SAPPHIRE_BACKTEST_REPORTS_DIR is not set" in missing.json()["detail"]
