"""What a signal says: the direction an analyst expects a symbol to move."""

from __future__ import annotations

import enum


class Direction(enum.StrEnum):
    LONG = "long"
    SHORT = "short"
    FLAT = "flat"

    @property
    def sign(self) -> int:
        """+1 long, -1 short, 0 flat."""
        return _SIGN[self]


_SIGN = {Direction.LONG: 1, Direction.SHORT: -1, Direction.FLAT: 0}
