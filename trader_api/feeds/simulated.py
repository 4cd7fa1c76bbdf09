"""A seeded, regime-switching random walk with realistic spreads.

Each instrument's log price follows a random walk whose drift and volatility depend on a
hidden market regime (calm, trending up, trending down, stressed) that switches by a
Markov chain. The spread widens with volatility and never falls below one tick; trade
sizes are log-normal. Same seed, same ticks: backtests and tests are reproducible.

The walk itself is float arithmetic (it is noise, not money); every price leaves this
module as a ``Decimal`` rounded to the instrument's tick.
"""

from __future__ import annotations

import dataclasses
import decimal
import math
import random
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from sapphire.domain import decimals
from sapphire.trader_api.core import domain


@dataclasses.dataclass(frozen=True)
class Regime:
    name: str
    drift: float
    """Mean log return per step."""
    volatility: float
    """Standard deviation of the log return per step."""
    spread_bps: float
    """Half-spread as a fraction of price, in basis points."""


REGIMES = (
    Regime("calm", drift=0.0, volatility=0.0004, spread_bps=1.0),
    Regime("trend-up", drift=0.0002, volatility=0.0006, spread_bps=1.5),
    Regime("trend-down", drift=-0.0002, volatility=0.0006, spread_bps=1.5),
    Regime("stressed", drift=0.0, volatility=0.002, spread_bps=6.0),
)
STAY_PROBABILITY = 0.98
"""Chance of staying in the regime each step (regimes last about 50 steps)."""


@dataclasses.dataclass(frozen=True)
class SimulatedInstrument:
    symbol: str
    start_price: Decimal
    tick_size: Decimal
    lot_size: Decimal
    typical_size: Decimal = Decimal(1)


def simulate(
    instruments: Sequence[SimulatedInstrument],
    *,
    seed: int,
    start: datetime,
    step: timedelta,
) -> Iterator[list[domain.Quote]]:
    """Endless batches, one tick per instrument per step, at ``start``, ``start + step``..."""
    rng = random.Random(seed)
    regime = REGIMES[0]
    log_prices = {i.symbol: math.log(float(i.start_price)) for i in instruments}
    now = start
    while True:
        if rng.random() > STAY_PROBABILITY:
            regime = rng.choice([r for r in REGIMES if r is not regime])
        batch = []
        for instrument in instruments:
            log_prices[instrument.symbol] += rng.gauss(regime.drift, regime.volatility)
            batch.append(_tick(instrument, math.exp(log_prices[instrument.symbol]), regime, rng, now))
        yield batch
        now += step


def _tick(
    instrument: SimulatedInstrument, price: float, regime: Regime, rng: random.Random, ts: datetime
) -> domain.Quote:
    tick = instrument.tick_size
    mid = Decimal(repr(price))
    half_spread = max(mid * Decimal(repr(regime.spread_bps)) / 10_000, tick / 2)
    bid = max(decimals.round_to_step(mid - half_spread, tick, decimal.ROUND_FLOOR), tick)
    ask = max(decimals.round_to_step(mid + half_spread, tick, decimal.ROUND_CEILING), bid + tick)
    last = bid if rng.random() < 0.5 else ask
    raw_size = Decimal(repr(rng.lognormvariate(0.0, 0.75))) * instrument.typical_size
    size = max(
        decimals.round_to_step(raw_size, instrument.lot_size, decimal.ROUND_FLOOR), instrument.lot_size
    )
    return domain.Quote(symbol=instrument.symbol, bid=bid, ask=ask, last=last, size=size, ts=ts)


START_PRICES = {"BTC-USD": Decimal("65000"), "ETH-USD": Decimal("3200"), "AAPL": Decimal("190")}
"""Where the walk of a well-known symbol starts; any other symbol starts at 100."""


def instrument(symbol: str, *, tick_size: Decimal, lot_size: Decimal) -> SimulatedInstrument:
    """A simulated instrument on the venue's tick and lot, trading about ten lots a tick."""
    return SimulatedInstrument(
        symbol=symbol,
        start_price=START_PRICES.get(symbol, Decimal(100)),
        tick_size=tick_size,
        lot_size=lot_size,
        typical_size=max(lot_size * 10, Decimal(1) if lot_size >= 1 else lot_size * 100),
    )
