"""Which observations become which notifications: pure functions, one per kind.

Each :class:`Notification` carries an ``event_id`` that names the event, not the sighting:
the same fill, the same transition of the same object, or the same day's summary always gets
the same id, so seeing it twice (a replayed publication, a re-listed object, a restart)
can never notify twice.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from sapphire.notify.settings import Kind

Level = Literal["info", "success", "warning", "failure"]
"""Apprise's notify types."""

BAD_AGENT_PHASES = ("Degraded", "Failed")
MAX_MESSAGE = 500


@dataclasses.dataclass(frozen=True)
class Notification:
    event_id: str
    kind: Kind
    title: str
    body: str
    level: Level


def risk_change(previous: str | None, risk: Mapping[str, Any], *, event_id: str) -> Notification | None:
    """A notification when the risk state differs from ``previous`` (the last one notified,
    ``None`` when nothing was ever recorded: then only a state other than ACTIVE is news)."""
    state = str(risk["state"])
    if state == previous or (previous is None and state == "ACTIVE"):
        return None
    reason = str(risk.get("reason") or "no reason given")
    level: Level = {"HALTED": "failure", "REDUCING": "warning"}.get(state, "success")  # type: ignore[assignment]
    before = previous or "unknown"
    return Notification(
        event_id=event_id,
        kind=Kind.RISK,
        title=f"Sapphire: trading {state}",
        body=f"Risk state {before} -> {state}: {reason}",
        level=level,
    )


def large_fill(fill: Mapping[str, Any], *, threshold: Decimal) -> Notification | None:
    """A notification for a fill whose quantity x price reaches ``threshold``."""
    quantity, price = Decimal(str(fill["quantity"])), Decimal(str(fill["price"]))
    notional = quantity * price
    if notional < threshold:
        return None
    agent = f" by {fill['agent']}" if fill.get("agent") else ""
    side = str(fill["side"]).upper()
    return Notification(
        event_id=f"fill:{fill['id']}",
        kind=Kind.FILL,
        title=f"Sapphire: {side} {quantity} {fill['symbol']} filled",
        body=f"{side} {quantity} {fill['symbol']} at {price} (notional {notional}){agent}; "
        f"fee {fill.get('fee', '0')}, realized PnL {fill.get('realized_pnl', '0')}",
        level="info",
    )


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in status.get("conditions") or ():
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def agent_status(agent: Mapping[str, Any]) -> Notification | None:
    """A notification for a TradingAgent that is Degraded or Failed; one per transition
    (the Ready condition's lastTransitionTime tells transitions apart)."""
    status = agent.get("status") or {}
    phase = status.get("phase")
    if phase not in BAD_AGENT_PHASES:
        return None
    metadata = agent["metadata"]
    ready = _condition(status, "Ready")
    message = str(ready.get("message") or ready.get("reason") or "")[:MAX_MESSAGE]
    name = f"{metadata['namespace']}/{metadata['name']}"
    return Notification(
        event_id=f"agent:{metadata['uid']}:{phase}:{ready.get('lastTransitionTime', '')}",
        kind=Kind.AGENT_DEGRADED,
        title=f"Sapphire: agent {name} is {phase}",
        body=f"TradingAgent {name} is {phase}" + (f": {message}" if message else ""),
        level="failure" if phase == "Failed" else "warning",
    )


def migration_status(run: Mapping[str, Any]) -> Notification | None:
    """A notification for a MigrationRun that failed (a run runs once, so fails once)."""
    status = run.get("status") or {}
    if status.get("phase") != "Failed":
        return None
    metadata = run["metadata"]
    name = f"{metadata['namespace']}/{metadata['name']}"
    message = str(status.get("message") or "")[-MAX_MESSAGE:]
    return Notification(
        event_id=f"migration:{metadata['uid']}:Failed",
        kind=Kind.MIGRATION_FAILED,
        title=f"Sapphire: migration {name} failed",
        body=f"MigrationRun {name} failed after {status.get('attempts', '?')} attempt(s)"
        + (f": {message}" if message else ""),
        level="failure",
    )


def reconciliation(report: Mapping[str, Any]) -> Notification | None:
    """A notification for the live venue's reconciliation report (``<prefix>venue``, kind
    ``reconciliation``) when it found differences with the exchange.

    The event is the set of differences, not the report: a difference the engine cannot
    correct (a balance held outside Sapphire) is found again by every reconciliation, and is
    told once; a different set of differences is a new event."""
    if report.get("kind") != "reconciliation" or not report.get("differences"):
        return None
    differences = sorted(
        (str(d["kind"]), str(d["detail"]), str(d["notional"]), bool(d.get("halt")))
        for d in report["differences"]
    )
    digest = hashlib.sha256(json.dumps(differences).encode()).hexdigest()[:32]
    worth = sum((Decimal(notional) for _, _, notional, _ in differences), Decimal(0))
    listed = "; ".join(
        f"{kind}: {detail} (worth {notional})" for kind, detail, notional, _ in differences[:5]
    )
    more = f"; and {len(differences) - 5} more" if len(differences) > 5 else ""
    return Notification(
        event_id=f"reconciliation:{digest}",
        kind=Kind.RECONCILIATION,
        title=f"Sapphire: venue reconciliation found {len(differences)} difference(s) worth {worth}",
        body=(listed + more)[: MAX_MESSAGE * 2],
        level="failure" if any(halt for *_, halt in differences) else "warning",
    )


def summary_due(now: datetime.datetime, at: datetime.time) -> datetime.date | None:
    """The UTC day whose summary is due at ``now`` (``None`` before ``at`` on that day)."""
    utc = now.astimezone(datetime.UTC)
    return utc.date() if utc.time() >= at else None


def daily_pnl(risk: Mapping[str, Any], *, day: datetime.date) -> Notification:
    """The day's PnL from ``GET /v1/risk``: equity against the equity the day began with."""
    equity, start = Decimal(str(risk["equity"])), Decimal(str(risk["day_start_equity"]))
    pnl = equity - start
    percent = (pnl / start * 100).quantize(Decimal("0.01")) if start else Decimal(0)
    return Notification(
        event_id=f"daily-pnl:{day.isoformat()}",
        kind=Kind.DAILY_PNL,
        title=f"Sapphire: PnL {day.isoformat()} {pnl:+}",
        body=f"PnL {pnl:+} ({percent:+}%) on {day.isoformat()}: equity {start} -> {equity}; "
        f"risk state {risk['state']}",
        level="success" if pnl >= 0 else "warning",
    )
