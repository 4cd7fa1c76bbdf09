"""Finished backtests as the dashboard lists them (see :mod:`sapphire.trader_api.services.backtests`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from sapphire.trader_api.schemas.common import PublicModel


class BacktestPublic(PublicModel):
    name: str = Field(description="The directory of the report: the BacktestRun's or the local run's name.")
    finished_at: datetime = Field(description="When report.json was written.")
    total_return: str | None = Field(default=None, description="Decimal fraction, e.g. 0.0123 for 1.23 %.")
    sharpe: str | None = None
    max_drawdown: str | None = Field(default=None, description="Depth of the maximum drawdown, a fraction.")
    trades: int | None = None
    fees: str | None = None
    final_equity: str | None = None
    quotes: int | None = Field(default=None, description="Quotes replayed.")
    data_from: str | None = None
    data_to: str | None = None
    symbols: list[str] = Field(default_factory=list)
    agents: list[str] = Field(default_factory=list)
    report: str | None = Field(
        default=None, description="Path of the self-contained HTML report under this API, when there is one."
    )
    error: str | None = Field(default=None, description="Why the report could not be read.")
    slice: int | None = Field(
        default=None,
        description="For a BacktestRun split by spec.parallelism: the slice (1-based) this report is of."
        " Each slice is an independent backtest of its part of the period.",
    )
    trial: int | None = Field(
        default=None,
        description="For a BacktestRun with a spec.grid: the trial (1-based) this report is of, one"
        " combination of the grid's parameter values over the whole period.",
    )
