"""Finished backtests: their headline figures, and each self-contained HTML report."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse

from sapphire.resources.backtestrun import MAX_PARALLELISM, MAX_TRIALS
from sapphire.trader_api import contract
from sapphire.trader_api.deps import BacktestsDep, ReadScope
from sapphire.trader_api.schemas.backtests import BacktestPublic
from sapphire.trader_api.services import backtests

router = APIRouter(tags=["backtests"], route_class=contract.Route)

BacktestName = Annotated[
    str, Path(pattern=backtests.NAME_PATTERN, description="The backtest's directory name.")
]


def _public(backtest: backtests.Backtest) -> BacktestPublic:
    # The headline's figures (one definition: sapphire.domain.headline) carry over by name.
    figures = {
        k: v for k, v in dataclasses.asdict(backtest.headline).items() if k in BacktestPublic.model_fields
    }
    return BacktestPublic(
        **figures,
        name=backtest.name,
        finished_at=backtest.finished_at,
        data_from=backtest.data_from,
        data_to=backtest.data_to,
        symbols=list(backtest.symbols),
        agents=list(backtest.agents),
        report=_report_path(backtest) if backtest.has_html else None,
        slice=backtest.slice,
        trial=backtest.trial,
    )


def _report_path(backtest: backtests.Backtest) -> str:
    if backtest.trial is not None:
        return f"/v1/backtests/{backtest.name}/trials/{backtest.trial}/report.html"
    if backtest.slice is not None:
        return f"/v1/backtests/{backtest.name}/slices/{backtest.slice}/report.html"
    return f"/v1/backtests/{backtest.name}/report.html"


@router.get("/backtests", response_model=list[BacktestPublic])
def list_backtests(_: ReadScope, shelf: BacktestsDep) -> list[BacktestPublic]:
    """Finished backtests under ``SAPPHIRE_BACKTEST_REPORTS_DIR``, newest first (empty when unset)."""
    return [_public(backtest) for backtest in shelf.list()]


@router.get(
    "/backtests/{name}/report.html",
    response_class=FileResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "The self-contained HTML report."},
        **contract.responses(contract.NOT_FOUND.saying("No such backtest, or it has no HTML report")),
    },
)
def backtest_report(name: BacktestName, _: ReadScope, shelf: BacktestsDep) -> FileResponse:
    """One backtest's HTML report (plotly inlined: it works offline)."""
    return FileResponse(shelf.html(name), media_type="text/html; charset=utf-8")


@router.get(
    "/backtests/{name}/slices/{slice}/report.html",
    response_class=FileResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "The self-contained HTML report of the slice."},
        **contract.responses(
            contract.NOT_FOUND.saying("No such backtest or slice, or it has no HTML report")
        ),
    },
)
def backtest_slice_report(
    name: BacktestName,
    slice: Annotated[int, Path(ge=1, le=MAX_PARALLELISM, description="The slice's number (1-based).")],
    _: ReadScope,
    shelf: BacktestsDep,
) -> FileResponse:
    """The HTML report of one slice of a BacktestRun split by ``spec.parallelism``."""
    return FileResponse(shelf.html(name, backtests.Part(slice=slice)), media_type="text/html; charset=utf-8")


@router.get(
    "/backtests/{name}/trials/{trial}/report.html",
    response_class=FileResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "The self-contained HTML report of the trial."},
        **contract.responses(
            contract.NOT_FOUND.saying("No such backtest or trial, or it has no HTML report")
        ),
    },
)
def backtest_trial_report(
    name: BacktestName,
    trial: Annotated[int, Path(ge=1, le=MAX_TRIALS, description="The trial's number (1-based).")],
    _: ReadScope,
    shelf: BacktestsDep,
) -> FileResponse:
    """The HTML report of one trial of a BacktestRun's ``spec.grid``."""
    return FileResponse(shelf.html(name, backtests.Part(trial=trial)), media_type="text/html; charset=utf-8")
