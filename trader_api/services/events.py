"""What a committed batch publishes: the wire form of its events and its market data.

Every order, fill, portfolio and risk event carries the account's sequence number
``seq``: one more than the event before it, never reused for a different event. A
subscriber that sees ``seq`` jump has missed events and resyncs from the API (the tables
hold everything committed); one that sees a ``seq`` again (a publication retried after a
lost answer) drops it.

On the ``events`` channel each message is ``{"type", "seq", "data"}``; on the per-kind
channels (``orders``, ``fills``, ``risk``) it is the data with ``seq`` added.
"""

from __future__ import annotations

from typing import Any

from sapphire import bus
from sapphire.trader_api.core import accounting
from sapphire.trader_api.core.domain import Quote
from sapphire.trader_api.core.records import Account, Changes, Event, Fill, Order
from sapphire.trader_api.schemas.dump import Dump, encode
from sapphire.trader_api.schemas.orders import FillPublic, OrderPublic
from sapphire.trader_api.schemas.portfolio import PortfolioPublic, PositionPublic
from sapphire.trader_api.services.market import quote_payload
from sapphire.trader_api.services.publisher import Publication
from sapphire.trader_api.services.runtime import dumps
from sapphire.trader_api.storage import journal


def open_positions(portfolio: accounting.Portfolio) -> list[accounting.Position]:
    """The positions the wire shows, by symbol: open ones, and closed ones with realized PnL."""
    return [
        p
        for p in sorted(portfolio.positions.values(), key=lambda p: p.symbol)
        if p.quantity != 0 or p.realized_pnl != 0
    ]


def portfolio_public(portfolio: accounting.Portfolio) -> PortfolioPublic:
    """The portfolio on the wire, as a model (the read route's answer)."""
    return PortfolioPublic.model_validate(portfolio_data(portfolio))


_ORDER, _FILL = Dump.of(OrderPublic), Dump.of(FillPublic)
_PORTFOLIO = Dump.of(PortfolioPublic)


_POSITION = Dump.of(PositionPublic)
_dumped_positions: dict[str, tuple[accounting.Position, dict[str, Any]]] = {}
"""The last dump of each symbol's position. Positions are immutable and a batch changes
a few of them, but every batch publishes the whole portfolio: the others are reused."""


def _position_data(position: accounting.Position) -> dict[str, Any]:
    held = _dumped_positions.get(position.symbol)
    if held is not None and held[0] is position:
        return held[1]
    data = _POSITION.data(position)
    _dumped_positions[position.symbol] = (position, data)
    return data


def portfolio_data(portfolio: accounting.Portfolio) -> dict[str, Any]:
    data = _PORTFOLIO.data(portfolio, positions=())
    data["positions"] = [_position_data(p) for p in open_positions(portfolio)]
    return data


def risk_payload(account: Account) -> dict[str, Any]:
    return {
        "state": account.risk_state.value,
        "reason": account.risk_reason,
        "limits": journal.limits_to_json(account.limits),
    }


def payload(event: Event) -> dict[str, Any]:
    """The event's data as :func:`dump.encode` takes it."""
    subject = event.subject
    if isinstance(subject, Order):
        return _ORDER.data(subject)
    if isinstance(subject, Fill):
        return _FILL.data(subject)
    if isinstance(subject, accounting.Portfolio):
        return portfolio_data(subject)
    return risk_payload(subject)


def publication(changes: Changes, names: bus.Names) -> Publication:
    channels = {"order": names.orders, "fill": names.fills, "risk": names.risk}
    encoded: dict[int, str] = {}

    def tick_json(quote: Quote) -> str:
        """Usually the batch's newest tick is also the symbol's latest quote: encoded once."""
        text = encoded.get(id(quote))
        if text is None:
            text = encoded[id(quote)] = dumps(quote_payload(quote))
        return text

    result = Publication(
        values={names.quote(symbol): tick_json(q) for symbol, q in changes.quotes.items()},
        # One message per symbol per batch, its newest tick: subscribers conflate.
        messages=[(names.ticks(symbol), tick_json(q)) for symbol, q in changes.ticks.items()],
    )
    for event in changes.events:
        # The data is encoded once and framed twice: {"type", "seq", "data"} on the events
        # channel, the data with "seq" last on its own channel.
        data = encode(payload(event)).decode()
        channel = channels.get(event.kind)
        if channel is not None:
            separator = "," if len(data) > 2 else ""
            result.messages.append((channel, f'{data[:-1]}{separator}"seq":{event.sequence}}}'))
        result.messages.append(
            (names.events, f'{{"type":"{event.kind}","seq":{event.sequence},"data":{data}}}')
        )
    return result
