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

from sapphire.trader_api import bus
from sapphire.trader_api.core import accounting
from sapphire.trader_api.core.records import Account, Changes, Event, Fill, Order
from sapphire.trader_api.schemas.orders import FillPublic, OrderPublic
from sapphire.trader_api.schemas.portfolio import PortfolioPublic, PositionPublic
from sapphire.trader_api.services.market import quote_payload
from sapphire.trader_api.services.publisher import Publication
from sapphire.trader_api.services.runtime import dumps
from sapphire.trader_api.storage import journal


def portfolio_public(portfolio: accounting.Portfolio) -> PortfolioPublic:
    """The portfolio on the wire: open positions and closed ones with realized PnL."""
    return PortfolioPublic(
        cash=portfolio.cash,
        equity=portfolio.equity,
        realized_pnl=portfolio.realized_pnl,
        unrealized_pnl=portfolio.unrealized_pnl,
        fees=portfolio.fees,
        gross_exposure=portfolio.gross_exposure,
        positions=[
            PositionPublic(
                symbol=p.symbol,
                quantity=p.quantity,
                average_price=p.average_price,
                mark=p.mark,
                market_value=p.market_value,
                unrealized_pnl=p.unrealized_pnl,
                realized_pnl=p.realized_pnl,
            )
            for p in sorted(portfolio.positions.values(), key=lambda p: p.symbol)
            if p.quantity != 0 or p.realized_pnl != 0
        ],
    )


def risk_payload(account: Account) -> dict[str, Any]:
    return {
        "state": account.risk_state.value,
        "reason": account.risk_reason,
        "limits": journal.limits_to_json(account.limits),
    }


def payload(event: Event) -> dict[str, Any]:
    subject = event.subject
    if isinstance(subject, Order):
        return OrderPublic.model_validate(subject).model_dump(mode="json")
    if isinstance(subject, Fill):
        return FillPublic.model_validate(subject).model_dump(mode="json")
    if isinstance(subject, accounting.Portfolio):
        return portfolio_public(subject).model_dump(mode="json")
    return risk_payload(subject)


def publication(changes: Changes, names: bus.Names) -> Publication:
    channels = {"order": names.orders, "fill": names.fills, "risk": names.risk}
    result = Publication(
        values={names.quote(symbol): dumps(quote_payload(q)) for symbol, q in changes.quotes.items()},
        messages=[(names.ticks(q.symbol), dumps(quote_payload(q))) for q in changes.ticks],
    )
    for event in changes.events:
        data = payload(event)
        channel = channels.get(event.kind)
        if channel is not None:
            result.messages.append((channel, dumps({**data, "seq": event.sequence})))
        result.messages.append(
            (names.events, dumps({"type": event.kind, "seq": event.sequence, "data": data}))
        )
    return result
