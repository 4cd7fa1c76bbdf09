"""Exact decimal arithmetic shared by the trader API's books and the agents' sizing.

Money, prices and quantities are :class:`~decimal.Decimal` everywhere in Sapphire; this module
holds the context they are computed in and the one rule that puts a value on an instrument's
tick or lot grid, so an order the executor sizes lands on the same grid the venue checks.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

CONTEXT = decimal.Context(
    prec=80,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
"""80 significant digits: wire decimals have at most 28, so products and sums of them are exact
and never silently rounded. Invalid operations, division by zero and overflow raise."""

_ZERO = Decimal(0)


def round_to_step(value: Decimal, step: Decimal, rounding: str = decimal.ROUND_FLOOR) -> Decimal:
    """``value`` on the grid of ``step`` (a tick or lot size), rounded by ``rounding``
    (``ROUND_FLOOR`` toward -inf, ``ROUND_CEILING`` toward +inf).

    A ``step`` that is not positive means the instrument has no grid: ``value`` is returned as
    it is. A value that rounds to no step at all is a plain ``0`` (not ``0E-8``), so it prints
    as zero on the wire.
    """
    if step <= 0:
        return value
    # CONTEXT's own methods: the operations of ``localcontext(CONTEXT)`` without copying the
    # context (the executor rounds five values per decision, the venue one per fill).
    units = CONTEXT.divide(value, step).to_integral_value(rounding=rounding, context=CONTEXT)
    return CONTEXT.multiply(units, step) if units else _ZERO
