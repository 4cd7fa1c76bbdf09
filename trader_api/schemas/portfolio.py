"""Portfolio and risk on the wire."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from sapphire.trader_api.core.domain import RiskState
from sapphire.trader_api.schemas.common import (
    FRACTION,
    POSITIVE,
    Amount,
    DecimalString,
    PublicModel,
    ShortText,
    WireModel,
)


class PositionPublic(PublicModel):
    symbol: str
    quantity: Amount
    average_price: Amount
    mark: Amount
    market_value: Amount
    unrealized_pnl: Amount
    realized_pnl: Amount


class PortfolioPublic(PublicModel):
    cash: Amount
    equity: Amount
    realized_pnl: Amount = Field(description="Gross of fees.")
    unrealized_pnl: Amount
    fees: Amount
    gross_exposure: Amount
    positions: list[PositionPublic]


class HistoryInterval(StrEnum):
    """The spacing of ``GET /v1/portfolio/history``: the last point of each bucket."""

    SECOND = "1s"
    MINUTE = "1m"
    HOUR = "1h"
    DAY = "1d"

    @property
    def width(self) -> timedelta:
        return timedelta(seconds=_INTERVAL_SECONDS[self])


_INTERVAL_SECONDS = {
    HistoryInterval.SECOND: 1,
    HistoryInterval.MINUTE: 60,
    HistoryInterval.HOUR: 3600,
    HistoryInterval.DAY: 86400,
}


class EquityPointPublic(PublicModel):
    """The books at the end of one second: ``ts`` is the second's start."""

    ts: datetime
    equity: Amount
    cash: Amount
    realized_pnl: Amount = Field(description="Gross of fees.")
    unrealized_pnl: Amount
    fees: Amount


class RiskLimitsPublic(PublicModel):
    max_order_notional: Amount
    max_position_notional: Amount
    max_gross_exposure: Amount
    max_daily_loss: Amount
    max_drawdown: Amount
    price_collar_bps: Amount
    stale_quote_seconds: Amount


_Limit = Annotated[Decimal, POSITIVE, DecimalString]


class RiskLimitsUpdate(WireModel):
    """Only the limits given change."""

    max_order_notional: _Limit | None = None
    max_position_notional: _Limit | None = None
    max_gross_exposure: _Limit | None = None
    max_daily_loss: _Limit | None = None
    max_drawdown: Annotated[Decimal, FRACTION, DecimalString] | None = None
    price_collar_bps: _Limit | None = None
    stale_quote_seconds: _Limit | None = None


class RiskPublic(PublicModel):
    state: RiskState
    reason: str
    limits: RiskLimitsPublic
    equity: Amount
    peak_equity: Amount
    day_start_equity: Amount


class RiskStateUpdate(WireModel):
    state: RiskState
    reason: ShortText
