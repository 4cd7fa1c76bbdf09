"""The headline of a backtest: the JSON ``sapphire backtest --termination-log`` leaves behind.

One definition for both sides of that wire: the backtest pod writes it (from the report, in
:mod:`sapphire.backtest.command`) and the operator reads it into a BacktestRun's status
(:mod:`sapphire.operator.backtests`), and the trader API lists finished backtests by it
(:mod:`sapphire.trader_api.services.backtests`). It must fit a termination message (4 KiB), so it holds
the figures ``kubectl get backtestruns`` shows, never the report itself. It lives in the domain
package, free of the engine's imports: the operator does not load them to read a headline,
and the trader API reads it without depending on the backtest package (which depends on it).
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any, Literal

from sapphire.domain import termination

RATIO_QUANTUM = Decimal("1e-6")
"""The report's ratios (returns, drawdowns, Sharpe) are rounded half-even to this quantum."""

_EXACT = decimal.Context(prec=4000, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.Inexact])
"""Sums and products of the slices' figures: any rounding would raise, not pass silently. A
status ratio has at most 40 characters, so the product of 32 of them has fewer digits."""
_ROUNDED = decimal.Context(prec=4000, rounding=decimal.ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Headline:
    """The figures of a finished backtest (decimal strings, as in the report), or ``error``."""

    total_return: str | None = None
    sharpe: str | None = None
    max_drawdown: str | None = None
    trades: int | None = None
    fees: str | None = None
    final_equity: str | None = None
    quotes: int | None = None
    data_sha256: str | None = None
    error: str | None = None

    @classmethod
    def of_report(cls, report: dict[str, Any]) -> Headline:
        figures = report["metrics"]
        return cls(
            total_return=figures["total_return"],
            sharpe=figures["sharpe"],
            max_drawdown=figures["max_drawdown"]["depth"],
            trades=figures["trades"],
            fees=figures["fees"],
            final_equity=figures["final_equity"],
            quotes=report["data"]["quotes"],
            data_sha256=report["data"]["sha256"],
        )

    def to_json(self) -> str:
        data = {key: value for key, value in asdict(self).items() if value is not None}
        if self.error is not None:
            data["error"] = self.error[: termination.LIMIT - 64]
        return termination.dump(data)

    @classmethod
    def parse(cls, message: str) -> Headline | None:
        """The headline in a termination message, or None when the message is not one."""
        data = termination.load(message)
        if data is None:
            return None
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def chain(slices: Sequence[Headline]) -> Headline:
    """The headline of consecutive slices of one period, each an independent backtest that
    started flat with the same initial cash (a BacktestRun's ``parallelism``).

    ``total_return`` compounds the slices' returns, prod(1 + r) - 1, computed exactly and then
    rounded half-even to :data:`RATIO_QUANTUM` as the report rounds its ratios; trades, fees and
    quotes are sums; ``max_drawdown`` is the worst slice's, a lower bound of the drawdown of the
    slices' curves chained end to end (a fall across a boundary is not seen). ``sharpe`` and
    ``final_equity`` are left out: neither follows from the slices' figures. ``data_sha256`` is
    kept when every slice replayed the same file. Every slice must have succeeded."""
    if not slices or any(part.error is not None or part.total_return is None for part in slices):
        raise ValueError("chaining needs the headlines of successful slices")
    with decimal.localcontext(_EXACT):
        growth = Decimal(1)
        for part in slices:
            growth *= 1 + Decimal(str(part.total_return))
        compounded = growth - 1
        fees = sum((Decimal(part.fees or "0") for part in slices), Decimal(0))
    drawdowns = [Decimal(part.max_drawdown) for part in slices if part.max_drawdown is not None]
    hashes = {part.data_sha256 for part in slices}
    return Headline(
        total_return=format(compounded.quantize(RATIO_QUANTUM, context=_ROUNDED), "f"),
        max_drawdown=format(max(drawdowns), "f") if drawdowns else None,
        trades=sum(part.trades or 0 for part in slices),
        fees=format(fees, "f"),
        quotes=sum(part.quotes or 0 for part in slices),
        data_sha256=hashes.pop() if len(hashes) == 1 else None,
    )


Objective = Literal["total_return", "sharpe"]
"""The figure of a :class:`Headline` the best of several backtests has the most of."""


def best(trials: Sequence[Headline], objective: Objective) -> int | None:
    """The index of the trial with the highest ``objective`` (a BacktestRun's grid), compared
    exactly as decimals; a tie goes to the first. A trial without the figure (a Sharpe ratio
    is undefined without variance) is not ranked; None when no trial has it. Every trial must
    have succeeded: the best of part of a grid is not the best of the grid."""
    if any(trial.error is not None or trial.total_return is None for trial in trials):
        raise ValueError("ranking needs the headlines of successful trials")
    figures = [trial.total_return if objective == "total_return" else trial.sharpe for trial in trials]
    ranked = [(Decimal(figure), -index) for index, figure in enumerate(figures) if figure is not None]
    return -max(ranked)[1] if ranked else None
