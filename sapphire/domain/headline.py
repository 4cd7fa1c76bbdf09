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

from dataclasses import asdict, dataclass, fields
from typing import Any

from sapphire.domain import termination


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
