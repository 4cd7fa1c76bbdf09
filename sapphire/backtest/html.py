"""The report as one self-contained HTML file: plotly with its JavaScript inlined (no CDN), so
it opens offline. Drawn from the JSON report only, so the two never disagree.

Plots: equity against buy and hold; underwater (drawdown from the running peak); each
symbol's mid with the trades' entries and exits; the monthly-returns heatmap.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

DIV_ID = "sapphire-backtest"
"""Fixed, so the same report renders to the same HTML."""


def _underwater(equity: list[float]) -> list[float]:
    peak, out = float("-inf"), []
    for value in equity:
        peak = max(peak, value)
        out.append(value / peak - 1 if peak > 0 else 0.0)
    return out


def render(report: dict[str, Any]) -> str:
    series = report["series"]
    ts = series["ts"]
    # Floats only for drawing: every figure the report states stays a decimal string.
    equity = [float(Decimal(v)) for v in series["equity"]]
    symbols = list(series["mids"])
    rows = 3 + len(symbols)
    titles = [
        "Equity vs buy and hold",
        "Underwater (drawdown)",
        *[f"{s}: mid, entries, exits" for s in symbols],
    ]
    figure = make_subplots(
        rows=rows, cols=1, subplot_titles=[*titles, "Monthly returns"], vertical_spacing=0.04
    )
    figure.add_trace(go.Scatter(x=ts, y=equity, name="strategy"), row=1, col=1)
    figure.add_trace(
        go.Scatter(x=ts, y=[float(Decimal(v)) for v in series["buy_and_hold"]], name="buy and hold"),
        row=1,
        col=1,
    )
    figure.add_trace(go.Scatter(x=ts, y=_underwater(equity), name="drawdown", fill="tozeroy"), row=2, col=1)
    for index, symbol in enumerate(symbols, start=3):
        mids = [None if v is None else float(Decimal(v)) for v in series["mids"][symbol]]
        figure.add_trace(go.Scatter(x=ts, y=mids, name=symbol), row=index, col=1)
        trades = [t for t in report["trades"] if t["symbol"] == symbol]
        for label, key, marker in (("entry", "opened_at", "triangle-up"), ("exit", "closed_at", "x")):
            moments = [t[key] for t in trades if t[key] is not None]
            prices = [_price_at(ts, mids, moment) for moment in moments]
            figure.add_trace(
                go.Scatter(
                    x=moments, y=prices, mode="markers", marker_symbol=marker, name=f"{symbol} {label}"
                ),
                row=index,
                col=1,
            )
    months = report["monthly_returns"]
    years = sorted({m[:4] for m in months})
    grid = [
        [
            float(Decimal(months[f"{y}-{m:02d}"])) * 100 if f"{y}-{m:02d}" in months else None
            for m in range(1, 13)
        ]
        for y in years
    ]
    figure.add_trace(
        go.Heatmap(
            z=grid, x=[f"{m:02d}" for m in range(1, 13)], y=years, colorscale="RdYlGn", name="% per month"
        ),
        row=rows,
        col=1,
    )
    figure.update_layout(height=320 * rows, title=f"Sapphire backtest: {report['data']['source']}")
    page: str = pio.to_html(figure, include_plotlyjs=True, full_html=True, div_id=DIV_ID)
    return page


def _price_at(ts: list[str], mids: list[float | None], moment: str) -> float | None:
    """The plotted mid at or just before ``moment`` (the series is decimated)."""
    price = None
    for when, mid in zip(ts, mids, strict=True):
        if when > moment:
            break
        price = mid
    return price
