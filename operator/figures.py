"""Trading figures in TradingAgent status, read from the trader API.

They stay in status (``kubectl get ta`` shows LAST-SIGNAL; ``kubectl describe`` the rest), so
they are written by the one writer of the status: the agent's reconcile, under its per-object
lock, in the same patch as the phase and conditions, when ``status_refresh_seconds`` have
passed (see ``handlers.OperatorState.figures_if_due``). A separate refresh loop used to patch
the whole conditions list from a listing up to 30 s old, and so could write back a Ready
condition a newer reconcile had replaced. Prometheus and the trader API remain the place for
history; status holds the latest reading only.

An unreachable API is reported in the ``TradingFigures`` condition only: the agent's
``Ready`` condition describes its pod, and must not flap because the API is down.
"""

from __future__ import annotations

import datetime

import httpx

from sapphire.operator.payloads import Json
from sapphire.resources import common

CONDITION = "TradingFigures"

# trader API field -> TradingAgent status field
FIELDS = {
    "last_signal_at": "lastSignalAt",
    "signals_last_hour": "signalsLastHour",
    "orders_last_hour": "ordersLastHour",
    "realized_pnl": "realizedPnl",
    "unrealized_pnl": "unrealizedPnl",
    "gross_exposure": "grossExposure",
}


def _condition(status: Json, *, ok: bool, reason: str, message: str, now: datetime.datetime) -> list[Json]:
    return common.apply_conditions(
        status.get("conditions") or [], {CONDITION: (ok, reason, message)}, observed_generation=None, now=now
    )


def figures_from_stats(stats: Json) -> Json:
    """The status fields the trader API's agent statistics provide; unknown ones are skipped."""
    update: Json = {}
    for source, target in FIELDS.items():
        value = stats.get(source)
        if value is None:
            continue
        update[target] = int(value) if target.endswith("LastHour") else str(value)
    return update


async def read_figures(
    client: httpx.AsyncClient, *, token: str, agent: str, status: Json, now: datetime.datetime
) -> Json:
    """A status patch with the agent's figures, or with the condition saying why there are none."""
    try:
        response = await client.get(f"/v1/agents/{agent}/stats", headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as error:
        message = f"trader API unreachable: {type(error).__name__}"
        return {
            "conditions": _condition(
                status, ok=False, reason="TraderApiUnreachable", message=message, now=now
            )
        }
    if response.status_code == 404:
        message = "the trader API has no statistics for this agent yet"
        return {"conditions": _condition(status, ok=False, reason="NoStatistics", message=message, now=now)}
    if response.status_code != 200:
        message = f"trader API answered {response.status_code}"
        return {"conditions": _condition(status, ok=False, reason="TraderApiError", message=message, now=now)}
    update = figures_from_stats(response.json())
    update["figuresUpdatedAt"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    update["conditions"] = _condition(
        status, ok=True, reason="FiguresRead", message="figures read from the trader API", now=now
    )
    return update
