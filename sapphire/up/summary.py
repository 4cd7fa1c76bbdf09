"""The terminal summary of ``sapphire up``: a snapshot of the API's own answers, drawn by rich.

:func:`build_snapshot` is pure (``/v1`` JSON in, a :class:`Snapshot` out), so what the
terminal shows and what ``--json`` prints are the same facts, and tests need no terminal.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from sapphire.resources import tradingagent


@dataclasses.dataclass(frozen=True)
class AgentLine:
    name: str
    role: str
    symbols: str
    alive: bool
    heartbeat_age_seconds: float | None
    signals: int
    last_signal: str
    """``BTC-USD long +0.42``, or empty before the first one."""


@dataclasses.dataclass(frozen=True)
class Snapshot:
    agents: tuple[AgentLine, ...]
    signals: int
    orders: int
    filled_orders: int
    fills: int
    cash: Decimal
    equity: Decimal
    pnl: Decimal
    """Realized plus unrealized, net of fees."""
    positions: tuple[tuple[str, Decimal, Decimal], ...]
    """``(symbol, quantity, market value)`` of every open position."""
    risk_state: str
    risk_reason: str

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: decimals as strings, as on the wire."""
        return {
            "agents": [dataclasses.asdict(agent) for agent in self.agents],
            "signals": self.signals,
            "orders": self.orders,
            "filled_orders": self.filled_orders,
            "fills": self.fills,
            "cash": format(self.cash, "f"),
            "equity": format(self.equity, "f"),
            "pnl": format(self.pnl, "f"),
            "positions": [
                {"symbol": symbol, "quantity": format(quantity, "f"), "market_value": format(value, "f")}
                for symbol, quantity, value in self.positions
            ],
            "risk": {"state": self.risk_state, "reason": self.risk_reason},
        }


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


def build_snapshot(
    *,
    now: datetime,
    agents: list[dict[str, Any]],
    signals: list[dict[str, Any]],
    orders: list[dict[str, Any]],
    fills: list[dict[str, Any]],
    portfolio: dict[str, Any],
    risk: dict[str, Any],
    expected_agents: list[tuple[str, str]],
) -> Snapshot:
    """``signals``, ``orders`` and ``fills`` newest first, as ``/v1`` lists them.

    ``expected_agents`` (name, role) are shown even before their first heartbeat."""
    heartbeats = {agent["name"]: agent for agent in agents}
    per_agent: dict[str, int] = {}
    latest: dict[str, dict[str, Any]] = {}
    for signal in signals:
        per_agent[signal["agent"]] = per_agent.get(signal["agent"], 0) + 1
        latest.setdefault(signal["agent"], signal)
    lines = []
    names = [name for name, _ in expected_agents] + sorted(set(heartbeats) - {n for n, _ in expected_agents})
    roles = dict(expected_agents)
    for name in names:
        beat = heartbeats.get(name)
        last = latest.get(name)
        age = None
        if beat is not None:
            age = max(0.0, (now - datetime.fromisoformat(beat["last_heartbeat_at"])).total_seconds())
        lines.append(
            AgentLine(
                name=name,
                role=beat["role"] if beat else roles.get(name, "?"),
                symbols=tradingagent.summarize_symbols(beat["symbols"]) if beat else "",
                alive=bool(beat and beat["alive"]),
                heartbeat_age_seconds=age,
                signals=per_agent.get(name, 0),
                last_signal=(
                    f"{last['symbol']} {last['direction']} {_decimal(last['strength']):+.2f}" if last else ""
                ),
            )
        )
    pnl = (
        _decimal(portfolio["realized_pnl"])
        + _decimal(portfolio["unrealized_pnl"])
        - _decimal(portfolio["fees"])
    )
    return Snapshot(
        agents=tuple(lines),
        signals=len(signals),
        orders=len(orders),
        filled_orders=sum(1 for order in orders if order["status"] == "filled"),
        fills=len(fills),
        cash=_decimal(portfolio["cash"]),
        equity=_decimal(portfolio["equity"]),
        pnl=pnl,
        positions=tuple(
            (p["symbol"], _decimal(p["quantity"]), _decimal(p["market_value"]))
            for p in portfolio["positions"]
            if _decimal(p["quantity"]) != 0
        ),
        risk_state=risk["state"],
        risk_reason=risk.get("reason") or "",
    )


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def render(snapshot: Snapshot, *, header: str) -> RenderableType:
    """The live view: agents with their last signal, then orders, fills, equity and risk."""
    agents = Table(box=box.SIMPLE_HEAD, expand=False, title_justify="left")
    for column in ("agent", "role", "symbols", "heartbeat", "signals", "last signal"):
        agents.add_column(column, justify="right" if column == "signals" else "left", no_wrap=True)
    for line in snapshot.agents:
        if line.heartbeat_age_seconds is None:
            beat = Text("starting", style="yellow")
        else:
            beat = Text(f"{line.heartbeat_age_seconds:.0f}s ago", style="green" if line.alive else "red")
        agents.add_row(line.name, line.role, line.symbols, beat, str(line.signals), line.last_signal)
    risk_style = {"ACTIVE": "bold green", "REDUCING": "bold yellow"}.get(snapshot.risk_state, "bold red")
    figures = Text.assemble(
        ("equity ", "dim"),
        (_money(snapshot.equity), "bold"),
        ("   PnL ", "dim"),
        (f"{snapshot.pnl:+,.2f}", "green" if snapshot.pnl >= 0 else "red"),
        ("   cash ", "dim"),
        _money(snapshot.cash),
        ("   orders ", "dim"),
        f"{snapshot.orders} ({snapshot.filled_orders} filled)",
        ("   fills ", "dim"),
        str(snapshot.fills),
        ("   risk ", "dim"),
        (snapshot.risk_state, risk_style),
    )
    positions = Text.assemble(
        ("positions ", "dim"),
        "  ".join(
            f"{symbol} {quantity:,f} ({_money(value)})" for symbol, quantity, value in snapshot.positions
        )
        or "none yet",
    )
    return Group(Text(header), agents, figures, positions)


def one_line(snapshot: Snapshot) -> str:
    """A status line for logs and terminals without live display."""
    alive = sum(1 for agent in snapshot.agents if agent.alive)
    return (
        f"agents {alive}/{len(snapshot.agents)} alive, signals {snapshot.signals}, orders {snapshot.orders}, "
        f"fills {snapshot.fills}, equity {_money(snapshot.equity)}, PnL {snapshot.pnl:+,.2f}, "
        f"risk {snapshot.risk_state}"
    )
