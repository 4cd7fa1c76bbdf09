"""Trading figures in TradingAgent status: an unreachable trader API is reported in its own
condition and leaves Ready alone."""

from __future__ import annotations

import datetime

import httpx

from sapphire.operator import figures
from tests.support import processes

NOW = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)
READY = {
    "type": "Ready",
    "status": "True",
    "reason": "AgentReady",
    "message": "the agent's pod is running and ready",
    "lastTransitionTime": "2026-11-27T11:00:00Z",
}


async def test_an_unreachable_api_sets_only_the_figures_condition() -> None:
    closed = processes.free_port()  # nothing listens there: a real connection refusal
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{closed}", timeout=2) as client:
        update = await figures.read_figures(
            client, token="t", agent="momo", status={"conditions": [READY]}, now=NOW
        )
    assert set(update) == {"conditions"}, "no stale figures are written"
    by_type = {c["type"]: c for c in update["conditions"]}
    assert by_type["Ready"] == READY
    assert by_type[figures.CONDITION]["status"] == "False"
    assert by_type[figures.CONDITION]["reason"] == "TraderApiUnreachable"


def test_statistics_map_onto_status_fields() -> None:
    stats = {
        "last_signal_at": "2026-11-27T11:59:00Z",
        "signals_last_hour": 12,
        "realized_pnl": "-3.50",
        "other": 1,
    }
    assert figures.figures_from_stats(stats) == {
        "lastSignalAt": "2026-11-27T11:59:00Z",
        "signalsLastHour": 12,
        "realizedPnl": "-3.50",
    }
