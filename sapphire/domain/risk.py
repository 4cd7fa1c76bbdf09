"""The risk state of an account and the notional limits every layer speaks of.

The trader API enforces them on the account (``/v1/risk``), a TradingAgent executor's
``spec.risk`` sizes its orders within them, and ``sapphire up`` and backtests pass them on:
the names and meanings are defined here once.
"""

from __future__ import annotations

import dataclasses
import enum
from decimal import Decimal


class RiskState(enum.StrEnum):
    """What an account may do now; every order is checked against it before anything else."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    """Only orders that shrink a position (without flipping it) are accepted."""
    HALTED = "HALTED"
    """The kill switch: no order is accepted and resting orders are canceled (protective
    orders that only reduce a position excepted, as far as the risk rules allow)."""


@dataclasses.dataclass(frozen=True)
class NotionalLimits:
    """Limits in the account's quote currency, shared by the account and the executor."""

    max_order_notional: Decimal
    """No single order above this notional (quantity x price)."""
    max_position_notional: Decimal
    """No position in one instrument above this notional."""
    max_gross_exposure: Decimal
    """The sum of all positions' notionals stays below this."""
    max_daily_loss: Decimal
    """Equity lost since the start of the UTC day that halts trading."""
