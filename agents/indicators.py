"""Incremental indicators: every update is O(1) in time and memory bounded by its window.

An analyst sees every tick of every symbol it follows, so recomputing a 500-point window
per tick would make the cost grow with the window. Each indicator here keeps just enough
state (a running sum, a ring buffer, the current bucket) to update in constant time.

Statistics are floats: they describe prices, they are never prices. Anything that becomes
an order is Decimal, downstream in :mod:`sapphire.agents.sizing`.
"""

from __future__ import annotations

import math
from collections import deque


class Ema:
    """Exponential moving average with ``alpha = 2 / (span + 1)``; seeded by the first value."""

    def __init__(self, span: int) -> None:
        if span < 1:
            raise ValueError("span must be >= 1")
        self.alpha = 2.0 / (span + 1)
        self.value: float | None = None
        self.count = 0

    def update(self, x: float) -> float:
        self.count += 1
        self.value = x if self.value is None else self.value + self.alpha * (x - self.value)
        return self.value


class RollingStats:
    """Mean and sample variance over the last ``window`` values (Welford with removal).

    Adding and evicting one value each adjust the running mean and the sum of squared
    deviations, so an update is O(1) and, unlike naive sum-of-squares, stays numerically
    stable when the values are large prices with small moves.
    """

    def __init__(self, window: int) -> None:
        if window < 2:
            raise ValueError("window must be >= 2")
        self.window = window
        self._values: deque[float] = deque()
        self._mean = 0.0
        self._m2 = 0.0
        self._updates = 0

    def update(self, x: float) -> None:
        self._values.append(x)
        n = len(self._values)
        delta = x - self._mean
        self._mean += delta / n
        self._m2 += delta * (x - self._mean)
        if n > self.window:
            old = self._values.popleft()
            n -= 1
            delta_old = old - self._mean
            self._mean -= delta_old / n
            self._m2 -= delta_old * (old - self._mean)
            # Rounding can leave a tiny negative residue on a constant series.
            self._m2 = max(self._m2, 0.0)
        self._updates += 1
        if self._updates >= self.window:
            self._refresh()

    def _refresh(self) -> None:
        """Recompute exactly from the buffer once per window of updates.

        Removal updates accumulate rounding error when values span orders of magnitude;
        an exact two-pass recomputation every ``window`` updates bounds that drift and
        costs O(1) amortized.
        """
        self._updates = 0
        n = len(self._values)
        self._mean = math.fsum(self._values) / n
        self._m2 = math.fsum((v - self._mean) ** 2 for v in self._values)

    @property
    def count(self) -> int:
        return len(self._values)

    @property
    def full(self) -> bool:
        return len(self._values) >= self.window

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def variance(self) -> float:
        n = len(self._values)
        return self._m2 / (n - 1) if n > 1 else 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)


class ZScore:
    """How many rolling standard deviations the latest value sits from the rolling mean."""

    def __init__(self, window: int) -> None:
        self.stats = RollingStats(window)
        self.value = 0.0

    def update(self, x: float) -> float:
        self.stats.update(x)
        std = self.stats.std
        self.value = (x - self.stats.mean) / std if std > 0 else 0.0
        return self.value


class RealizedVolatility:
    """Standard deviation of log returns over the last ``window`` ticks (per-tick units)."""

    def __init__(self, window: int) -> None:
        self.stats = RollingStats(window)
        self._last: float | None = None
        self.last_return = 0.0

    def update(self, price: float) -> float:
        if price <= 0:
            return self.value
        if self._last is not None:
            self.last_return = math.log(price / self._last)
            self.stats.update(self.last_return)
        self._last = price
        return self.value

    @property
    def value(self) -> float:
        return self.stats.std

    @property
    def ready(self) -> bool:
        return self.stats.full


def classify_trade(*, last: float, bid: float, ask: float, previous_last: float | None) -> int:
    """Lee-Ready trade sign: +1 buyer-initiated, -1 seller-initiated, 0 unknown.

    The quote rule (at or through the ask is a buy, at or through the bid a sell, else by
    side of the mid) decides first; inside-the-spread prints at the mid fall back to the
    tick rule against the previous trade.
    """
    if ask > bid:
        if last >= ask:
            return 1
        if last <= bid:
            return -1
        mid = (bid + ask) / 2
        if last > mid:
            return 1
        if last < mid:
            return -1
    if previous_last is None or last == previous_last:
        return 0
    return 1 if last > previous_last else -1


class OrderFlowImbalance:
    """Signed traded volume over total traded volume on the last ``window`` trades (-1..1)."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self._flows: deque[tuple[float, float]] = deque()
        self._signed = 0.0
        self._total = 0.0

    def update(self, sign: int, size: float) -> float:
        size = max(size, 0.0)
        self._flows.append((sign * size, size))
        self._signed += sign * size
        self._total += size
        if len(self._flows) > self.window:
            signed, total = self._flows.popleft()
            self._signed -= signed
            self._total -= total
        return self.value

    @property
    def count(self) -> int:
        return len(self._flows)

    @property
    def value(self) -> float:
        return self._signed / self._total if self._total > 1e-12 else 0.0


class Vpin:
    """Volume-synchronized probability of informed trading (Easley, López de Prado, O'Hara).

    Trades fill equal-volume buckets; each full bucket records ``|buy - sell| / bucket``;
    VPIN is the mean of the last ``buckets`` records. A trade larger than the room left in
    a bucket spills into the next one, so the work per trade is O(1) amortized (bounded by
    ``size / bucket_volume``).
    """

    def __init__(self, *, bucket_volume: float, buckets: int) -> None:
        if bucket_volume <= 0 or buckets < 1:
            raise ValueError("bucket_volume must be > 0 and buckets >= 1")
        self.bucket_volume = bucket_volume
        self._imbalances: deque[float] = deque(maxlen=buckets)
        self._sum = 0.0
        self._buy = 0.0
        self._sell = 0.0

    def update(self, sign: int, size: float) -> float:
        remaining = max(size, 0.0)
        if sign == 0:
            # Unclassified volume counts half each way: it fills buckets, adds no imbalance.
            return self._fill(remaining / 2, remaining / 2)
        while remaining > 0:
            room = self.bucket_volume - (self._buy + self._sell)
            take = min(room, remaining)
            if sign > 0:
                self._buy += take
            else:
                self._sell += take
            remaining -= take
            self._close_if_full()
        return self.value

    def _fill(self, buy: float, sell: float) -> float:
        total = buy + sell
        while total > 0:
            room = self.bucket_volume - (self._buy + self._sell)
            take = min(room, total)
            self._buy += take * buy / (buy + sell)
            self._sell += take * sell / (buy + sell)
            total -= take
            self._close_if_full()
        return self.value

    def _close_if_full(self) -> None:
        if self._buy + self._sell >= self.bucket_volume - 1e-12:
            if len(self._imbalances) == self._imbalances.maxlen:
                self._sum -= self._imbalances[0]
            imbalance = abs(self._buy - self._sell) / self.bucket_volume
            self._imbalances.append(imbalance)
            self._sum += imbalance
            self._buy = self._sell = 0.0

    @property
    def buckets(self) -> int:
        return len(self._imbalances)

    @property
    def value(self) -> float:
        return self._sum / len(self._imbalances) if self._imbalances else 0.0
