"""Synthetic market series whose right answer is known."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sapphire.agents import market

START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def tick(
    symbol: str, price: float, *, at: datetime, size: float = 1.0, side: int = 0, spread: float = 0.0002
) -> market.Tick:
    """A tick around ``price``; ``side`` +1 prints at the ask, -1 at the bid, 0 at the mid."""
    half = price * spread / 2
    bid, ask = price - half, price + half
    last = ask if side > 0 else bid if side < 0 else price
    return market.Tick(
        symbol=symbol,
        bid=Decimal(f"{bid:.6f}"),
        ask=Decimal(f"{ask:.6f}"),
        last=Decimal(f"{last:.6f}"),
        size=Decimal(f"{size:.4f}"),
        ts=at,
    )


def prices_to_ticks(
    symbol: str, prices: list[float], *, sides: list[int] | None = None
) -> Iterator[market.Tick]:
    for i, price in enumerate(prices):
        yield tick(symbol, price, at=START + timedelta(seconds=i), side=sides[i] if sides else 0)


def uptrend(
    n: int = 300, *, start: float = 100.0, drift: float = 0.0005, noise: float = 0.0002, seed: int = 1
) -> list[float]:
    rng = random.Random(seed)
    prices, price = [], start
    for _ in range(n):
        price *= math.exp(drift + rng.gauss(0, noise))
        prices.append(price)
    return prices


def random_walk(n: int = 300, *, start: float = 100.0, noise: float = 0.001, seed: int = 2) -> list[float]:
    return uptrend(n, start=start, drift=0.0, noise=noise, seed=seed)


def mean_reverting(n: int = 200, *, level: float = 100.0, noise: float = 0.05, seed: int = 3) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0, noise) for _ in range(n)]
