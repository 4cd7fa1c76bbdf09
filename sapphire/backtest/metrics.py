"""Performance metrics of a backtest: pure functions of an equity curve and round-trip trades.

Everything is :class:`~decimal.Decimal` in one fixed context (:data:`CONTEXT`), so the same
curve always gives the same digits on every machine, and money is never a float. Ratios are
quantized to :data:`RATIO_QUANTUM` for the report.

Conventions (stated in the report, so a reader can recompute them):

* returns are simple returns between consecutive equity samples; a year is 365 days (markets
  such as crypto trade every day), so ``periods_per_year = 365 * 86400 / sample_seconds``;
* the risk-free rate is zero; Sharpe is ``mean / stdev * sqrt(periods_per_year)`` with the
  sample standard deviation, Sortino uses the downside deviation ``sqrt(mean(min(r, 0)^2))``;
* CAGR annualises the total return over the curve's span; Calmar is ``CAGR / max drawdown``;
* the maximum drawdown is the deepest fall from a running peak, as a fraction of that peak;
  it starts at the peak, bottoms at the trough and ends when equity regains the peak (or not).
"""

from __future__ import annotations

import dataclasses
import decimal
import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from sapphire.domain import headline

CONTEXT = decimal.Context(prec=34, rounding=decimal.ROUND_HALF_EVEN)
RATIO_QUANTUM = headline.RATIO_QUANTUM
SECONDS_PER_YEAR = Decimal(365 * 86400)
ZERO = Decimal(0)
ONE = Decimal(1)


@dataclasses.dataclass(frozen=True)
class Sample:
    """Equity at one moment of the simulated clock."""

    ts: datetime
    equity: Decimal


@dataclasses.dataclass(frozen=True)
class Drawdown:
    depth: Decimal
    """Fraction of the peak lost at the trough (0 when equity never fell)."""
    start: datetime | None
    """The peak the fall began from."""
    trough: datetime | None
    end: datetime | None
    """When equity regained the peak; ``None`` if it never did within the curve."""
    duration: timedelta
    """``end - start``, or up to the last sample while the drawdown is still open."""


@dataclasses.dataclass(frozen=True)
class Trade:
    """One round trip in one symbol: from a flat position back to flat (or a flip)."""

    symbol: str
    side: str
    """``long`` or ``short``."""
    opened_at: datetime
    closed_at: datetime | None
    """``None``: still open when the data ended."""
    pnl: Decimal
    """Realized PnL net of the fees of its fills."""
    fees: Decimal


def _q(value: Decimal) -> Decimal:
    return value.quantize(RATIO_QUANTUM, context=CONTEXT)


def period_returns(curve: Sequence[Sample]) -> list[Decimal]:
    """Simple returns between consecutive samples; a sample at zero equity ends the series."""
    with decimal.localcontext(CONTEXT):
        returns = []
        for before, after in itertools.pairwise(curve):
            if before.equity <= 0:
                break
            returns.append(after.equity / before.equity - 1)
        return returns


def total_return(curve: Sequence[Sample]) -> Decimal:
    if len(curve) < 2 or curve[0].equity <= 0:
        return ZERO
    with decimal.localcontext(CONTEXT):
        return _q(curve[-1].equity / curve[0].equity - 1)


def years(curve: Sequence[Sample]) -> Decimal:
    if len(curve) < 2:
        return ZERO
    with decimal.localcontext(CONTEXT):
        return Decimal(str((curve[-1].ts - curve[0].ts).total_seconds())) / SECONDS_PER_YEAR


def cagr(curve: Sequence[Sample]) -> Decimal:
    span = years(curve)
    if span <= 0 or curve[0].equity <= 0:
        return ZERO
    with decimal.localcontext(CONTEXT):
        growth = curve[-1].equity / curve[0].equity
        if growth <= 0:
            return Decimal(-1)
        return _q(growth ** (ONE / span) - 1)


def _mean(values: Sequence[Decimal]) -> Decimal:
    with decimal.localcontext(CONTEXT):
        return sum(values, ZERO) / len(values)


def _stdev(values: Sequence[Decimal]) -> Decimal:
    if len(values) < 2:
        return ZERO
    with decimal.localcontext(CONTEXT):
        mean = _mean(values)
        variance = sum(((v - mean) ** 2 for v in values), ZERO) / (len(values) - 1)
        return variance.sqrt()


def annualised_volatility(returns: Sequence[Decimal], periods_per_year: Decimal) -> Decimal:
    with decimal.localcontext(CONTEXT):
        return _q(_stdev(returns) * periods_per_year.sqrt())


def sharpe(returns: Sequence[Decimal], periods_per_year: Decimal) -> Decimal | None:
    """``None`` when the returns do not vary (the ratio is undefined)."""
    deviation = _stdev(returns)
    if deviation == 0:
        return None
    with decimal.localcontext(CONTEXT):
        return _q(_mean(returns) / deviation * periods_per_year.sqrt())


def sortino(returns: Sequence[Decimal], periods_per_year: Decimal) -> Decimal | None:
    """``None`` without a losing period (no downside to divide by)."""
    if not returns:
        return None
    with decimal.localcontext(CONTEXT):
        downside = (sum((min(r, ZERO) ** 2 for r in returns), ZERO) / len(returns)).sqrt()
        if downside == 0:
            return None
        return _q(_mean(returns) / downside * periods_per_year.sqrt())


def max_drawdown(curve: Sequence[Sample]) -> Drawdown:
    if not curve:
        return Drawdown(ZERO, None, None, None, timedelta(0))
    with decimal.localcontext(CONTEXT):
        peak = curve[0]
        best = Drawdown(ZERO, None, None, None, timedelta(0))
        best_peak: Sample | None = None
        for sample in curve:
            if sample.equity >= peak.equity:
                peak = sample
                continue
            depth = (peak.equity - sample.equity) / peak.equity if peak.equity > 0 else ZERO
            if depth > best.depth:
                best = Drawdown(depth, peak.ts, sample.ts, None, timedelta(0))
                best_peak = peak
        if best_peak is None or best.start is None or best.trough is None:
            return best
        end = next(
            (s.ts for s in curve if s.ts > best.trough and s.equity >= best_peak.equity),
            None,
        )
        duration = (end if end is not None else curve[-1].ts) - best.start
        return Drawdown(_q(best.depth), best.start, best.trough, end, duration)


def calmar(cagr_value: Decimal, drawdown: Drawdown) -> Decimal | None:
    if drawdown.depth == 0:
        return None
    with decimal.localcontext(CONTEXT):
        return _q(cagr_value / drawdown.depth)


@dataclasses.dataclass(frozen=True)
class TradeStats:
    trades: int
    """Closed round trips (open ones are reported apart and not counted here)."""
    open_trades: int
    win_rate: Decimal | None
    profit_factor: Decimal | None
    """Gross profit / gross loss of closed trades; ``None`` without a losing trade."""
    expectancy: Decimal | None
    """Mean net PnL per closed trade."""
    average_holding: timedelta | None


def trade_stats(trades: Sequence[Trade]) -> TradeStats:
    closed = [t for t in trades if t.closed_at is not None]
    open_count = len(trades) - len(closed)
    if not closed:
        return TradeStats(0, open_count, None, None, None, None)
    with decimal.localcontext(CONTEXT):
        wins = [t.pnl for t in closed if t.pnl > 0]
        losses = [t.pnl for t in closed if t.pnl < 0]
        gross_loss = -sum(losses, ZERO)
        holding = sum(
            (t.closed_at - t.opened_at for t in closed if t.closed_at is not None), timedelta(0)
        ) / len(closed)
        return TradeStats(
            trades=len(closed),
            open_trades=open_count,
            win_rate=_q(Decimal(len(wins)) / len(closed)),
            profit_factor=_q(sum(wins, ZERO) / gross_loss) if gross_loss > 0 else None,
            expectancy=_q(_mean([t.pnl for t in closed])),
            average_holding=holding,
        )


def periods_per_year(sample_seconds: Decimal) -> Decimal:
    with decimal.localcontext(CONTEXT):
        return SECONDS_PER_YEAR / sample_seconds


@dataclasses.dataclass(frozen=True)
class Execution:
    """One fill, as the round-trip count sees it."""

    symbol: str
    signed_quantity: Decimal
    """Positive for a buy, negative for a sell."""
    realized_pnl: Decimal
    fee: Decimal
    ts: datetime


@dataclasses.dataclass
class _OpenTrade:
    side: str
    opened_at: datetime
    pnl: Decimal
    fees: Decimal


def round_trips(executions: Sequence[Execution]) -> list[Trade]:
    """Round trips per symbol, in order of opening. A trade opens when the position leaves zero
    and closes when it returns there; a fill that flips the position closes one and opens the
    next. Each fill's fee goes to the trade it belongs to (a flipping fill's to the closing one)."""
    held: dict[str, Decimal] = {}
    current: dict[str, _OpenTrade] = {}
    trades: list[Trade] = []

    def close(symbol: str, at: datetime | None) -> None:
        state = current.pop(symbol)
        trades.append(Trade(symbol, state.side, state.opened_at, at, state.pnl, state.fees))

    with decimal.localcontext(CONTEXT):
        for fill in executions:
            before = held.get(fill.symbol, ZERO)
            after = before + fill.signed_quantity
            held[fill.symbol] = after
            if before == 0:
                side = "long" if after > 0 else "short"
                current[fill.symbol] = _OpenTrade(side, fill.ts, -fill.fee, fill.fee)
                continue
            state = current[fill.symbol]
            state.pnl += fill.realized_pnl - fill.fee
            state.fees += fill.fee
            if after == 0 or (after > 0) != (before > 0):
                close(fill.symbol, fill.ts)
                if after != 0:
                    current[fill.symbol] = _OpenTrade("long" if after > 0 else "short", fill.ts, ZERO, ZERO)
        for symbol in sorted(current):
            close(symbol, None)
    return sorted(trades, key=lambda trade: trade.opened_at)
