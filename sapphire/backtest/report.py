"""The backtest report: one JSON document (canonical, so equal inputs give equal bytes) and
the terminal summary drawn from it.

Money and ratios are decimal strings; times are ISO-8601 UTC; durations are whole seconds.
The report names its inputs by content (the data file's SHA-256 and name, the agents' specs)
and never by where or when it ran, so a rerun anywhere reproduces it byte for byte.
"""

from __future__ import annotations

import decimal
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from rich.table import Table

from sapphire.backtest import metrics, replay
from sapphire.trader_api.core import domain, records

SCHEMA = "sapphire.backtest/v1"
SERIES_POINTS = 2000
"""At most this many points of each plotted series go into the report (metrics use them all)."""
CONVENTIONS = (
    "returns are simple returns between equity samples; a year is 365 days; the risk-free rate is 0",
    "Sharpe = mean / sample stdev x sqrt(periods per year); Sortino uses sqrt(mean(min(r, 0)^2))",
    "CAGR annualises the total return over the replayed span; Calmar = CAGR / max drawdown",
    "a trade is a round trip from a flat position back to flat (a flip closes one and opens the next); "
    "its PnL is realized PnL net of its fills' fees; open trades are not in win rate or expectancy",
    "exposure is the share of equity samples with a non-zero gross position",
    "buy and hold puts equal cash in every symbol at its first mid, without fees",
)


def _text(value: Decimal | None) -> str | None:
    return (
        None
        if value is None
        else format(value.normalize(), "f")
        if value == value.to_integral()
        else str(value)
    )


def _money(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.00000001"), context=metrics.CONTEXT).normalize(), "f")


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


def _decimate(count: int) -> list[int]:
    if count <= SERIES_POINTS:
        return list(range(count))
    step = -(-count // SERIES_POINTS)
    picked = list(range(0, count, step))
    return picked if picked[-1] == count - 1 else [*picked, count - 1]


def buy_and_hold(samples: Sequence[replay.Sample], initial: Decimal) -> list[Decimal]:
    """Equity of equal cash in every symbol at its first mid, held (no fees)."""
    symbols = sorted({s for sample in samples for s in sample.mids})
    first: dict[str, Decimal] = {}
    curve = []
    with decimal.localcontext(metrics.CONTEXT):
        for sample in samples:
            for symbol, mid in sample.mids.items():
                first.setdefault(symbol, mid)
            ratios = [
                sample.mids[s] / first[s] if s in first and s in sample.mids else Decimal(1) for s in symbols
            ]
            curve.append(initial * sum(ratios, Decimal(0)) / len(ratios) if ratios else initial)
    return curve


def monthly_returns(curve: Sequence[metrics.Sample]) -> dict[str, str]:
    """``YYYY-MM`` -> return from the month's first sample (or the previous month's last) to its last."""
    result: dict[str, str] = {}
    start = curve[0].equity if curve else Decimal(0)
    with decimal.localcontext(metrics.CONTEXT):
        for index, sample in enumerate(curve):
            month = sample.ts.strftime("%Y-%m")
            last_of_month = index == len(curve) - 1 or curve[index + 1].ts.strftime("%Y-%m") != month
            if last_of_month:
                change = sample.equity / start - 1 if start > 0 else Decimal(0)
                result[month] = str(change.quantize(metrics.RATIO_QUANTUM))
                start = sample.equity
    return result


def build(backtest: replay.Backtest, recording: replay.Recording) -> dict[str, Any]:
    """The report of one finished replay."""
    history, settings, account = backtest.history, backtest.settings, recording.final_account
    if account is None:
        raise ValueError("recording: the replay has not finished")
    curve = [metrics.Sample(s.ts, s.equity) for s in recording.samples]
    returns = metrics.period_returns(curve)
    per_year = metrics.periods_per_year(Decimal(backtest.sample_seconds))
    drawdown = metrics.max_drawdown(curve)
    cagr = metrics.cagr(curve)
    fills = recording.fills
    trades = metrics.round_trips(
        [metrics.Execution(f.symbol, f.quantity * f.side.sign, f.realized_pnl, f.fee, f.ts) for f in fills]
    )
    stats = metrics.trade_stats(trades)
    portfolio = account.portfolio
    benchmark = buy_and_hold(recording.samples, curve[0].equity)
    exposed = sum(1 for s in recording.samples[1:] if s.gross_exposure > 0)
    orders = sorted(recording.orders.values(), key=lambda o: o.sequence)
    figures = {
        "initial_equity": _money(curve[0].equity),
        "final_equity": _money(curve[-1].equity),
        "total_return": _text(metrics.total_return(curve)),
        "cagr": _text(cagr),
        "annualised_volatility": _text(metrics.annualised_volatility(returns, per_year)),
        "sharpe": _text(metrics.sharpe(returns, per_year)),
        "sortino": _text(metrics.sortino(returns, per_year)),
        "calmar": _text(metrics.calmar(cagr, drawdown)),
        "max_drawdown": {
            "depth": _text(drawdown.depth),
            "start": _time(drawdown.start),
            "trough": _time(drawdown.trough),
            "end": _time(drawdown.end),
            "duration_seconds": _seconds(drawdown.duration),
        },
        "trades": stats.trades,
        "open_trades": stats.open_trades,
        "win_rate": _text(stats.win_rate),
        "profit_factor": _text(stats.profit_factor),
        "expectancy": _text(stats.expectancy),
        "average_holding_seconds": _seconds(stats.average_holding),
        "exposure": _text(
            (Decimal(exposed) / max(len(recording.samples) - 1, 1)).quantize(metrics.RATIO_QUANTUM)
        ),
        "fees": _money(portfolio.fees),
        "realized_pnl": _money(portfolio.realized_pnl),
        "unrealized_pnl": _money(portfolio.unrealized_pnl),
        "signals": len(recording.signals),
        "orders": len(orders),
        "fills": len(fills),
        "refused_orders": len(recording.rejections),
        "buy_and_hold_return": _text(
            ((benchmark[-1] / benchmark[0] - 1) if benchmark[0] else Decimal(0)).quantize(
                metrics.RATIO_QUANTUM
            )
        ),
    }
    picked = _decimate(len(recording.samples))
    return {
        "schema": SCHEMA,
        "data": {
            "source": history.source,
            "sha256": history.sha256,
            "kind": history.kind,
            "model": history.model,
            "symbols": list(history.symbols),
            "from": _time(history.quotes[0].ts),
            "to": _time(history.quotes[-1].ts),
            "quotes": recording.events,
        },
        "agents": [
            {
                "name": a.name,
                "role": a.role,
                "symbols": list(a.symbols) or "ALL",
                "interval_seconds": a.interval_seconds,
            }
            for a in backtest.plan.agents
        ],
        "venue": {
            "model": "paper",
            "fee_bps": _text(settings.fee_bps),
            "slippage_bps": _text(settings.slippage_bps),
            "fills": (
                "the executor sends marketable IOC limit orders: they fill in full on arrival at the touch "
                "(buys at the ask, sells at the bid) and pay fee_bps; slippage_bps moves market orders only"
            ),
            "initial_cash": _money(settings.initial_cash),
            "risk_limits": {k: _text(v) for k, v in settings.risk.model_dump().items()},
        },
        "conventions": list(CONVENTIONS),
        "sample_seconds": backtest.sample_seconds,
        "metrics": figures,
        "per_symbol": _per_symbol(backtest, recording, account),
        "per_agent": _per_agent(backtest, recording),
        "monthly_returns": monthly_returns(curve),
        "risk_events": [
            {"ts": _time(ts), "state": state, "reason": why} for ts, state, why in recording.risk_changes
        ],
        "refusals": dict(sorted(Counter(r.rule for r in recording.rejections).items())),
        "series": {
            "ts": [_time(recording.samples[i].ts) for i in picked],
            "equity": [_money(recording.samples[i].equity) for i in picked],
            "buy_and_hold": [_money(benchmark[i]) for i in picked],
            "mids": {
                symbol: [_text(recording.samples[i].mids.get(symbol)) for i in picked]
                for symbol in history.symbols
            },
        },
        "trades": [
            {
                "symbol": t.symbol,
                "side": t.side,
                "opened_at": _time(t.opened_at),
                "closed_at": _time(t.closed_at),
                "pnl": _money(t.pnl),
                "fees": _money(t.fees),
            }
            for t in trades
        ],
        "notices": list(backtest.notices),
    } | _model_answers(backtest)


def _model_answers(backtest: replay.Backtest) -> dict[str, Any]:
    """What the LLM answer cache did, when the run used one (absent otherwise)."""
    answers = backtest.model_answers
    if answers is None:
        return {}
    counts = answers.counts
    return {
        "model_answers": {
            "on_miss": answers.on_miss,
            "hits": counts.hits,
            "stored": counts.stored,
            "abstained": counts.abstained,
        }
    }


def _per_symbol(
    backtest: replay.Backtest, recording: replay.Recording, account: records.Account
) -> list[dict[str, Any]]:
    signals = Counter(s.symbol for s in recording.signals)
    orders = Counter(o.symbol for o in recording.orders.values())
    fills: dict[str, list[Any]] = defaultdict(list)
    for fill in recording.fills:
        fills[fill.symbol].append(fill)
    rows = []
    samples = recording.samples
    first = samples[0].mids
    last = samples[-1].mids
    for symbol in backtest.history.symbols:
        position = account.portfolio.position(symbol)
        start = first.get(symbol)
        rows.append(
            {
                "symbol": symbol,
                "signals": signals[symbol],
                "orders": orders[symbol],
                "fills": len(fills[symbol]),
                "bought": _text(
                    sum((f.quantity for f in fills[symbol] if f.side is domain.Side.BUY), Decimal(0))
                ),
                "sold": _text(
                    sum((f.quantity for f in fills[symbol] if f.side is domain.Side.SELL), Decimal(0))
                ),
                "fees": _money(sum((f.fee for f in fills[symbol]), Decimal(0))),
                "realized_pnl": _money(position.realized_pnl),
                "unrealized_pnl": _money(position.unrealized_pnl),
                "final_position": _text(position.quantity),
                "price_change": None
                if start is None or symbol not in last
                else _text(
                    (last[symbol] / start - 1).quantize(metrics.RATIO_QUANTUM, context=metrics.CONTEXT)
                ),
            }
        )
    return rows


def _per_agent(backtest: replay.Backtest, recording: replay.Recording) -> list[dict[str, Any]]:
    by_agent: dict[str, Counter[str]] = defaultdict(Counter)
    for signal in recording.signals:
        by_agent[signal.agent][signal.direction.value] += 1
    rows = []
    for agent in backtest.plan.agents:
        own_fills = [f for f in recording.fills if f.agent == agent.name]
        counts = by_agent[agent.name]
        rows.append(
            {
                "agent": agent.name,
                "role": agent.role,
                "signals": sum(counts.values()),
                "long": counts["long"],
                "short": counts["short"],
                "flat": counts["flat"],
                "orders": sum(1 for o in recording.orders.values() if o.agent == agent.name),
                "fills": len(own_fills),
                "fees": _money(sum((f.fee for f in own_fills), Decimal(0))),
                "attributed_realized_pnl": _money(sum((f.realized_pnl for f in own_fills), Decimal(0))),
            }
        )
    return rows


def dumps(report: dict[str, Any]) -> str:
    """Canonical JSON: sorted keys, fixed indentation, a final newline."""
    return json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _pct(value: str | None) -> str:
    return "n/a" if value is None else f"{Decimal(value) * 100:.2f}%"


def _ratio(value: str | None) -> str:
    return "n/a" if value is None else f"{Decimal(value):.3f}"


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "n/a"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours:02d}h {rest // 60:02d}m" if days else f"{hours}h {rest // 60:02d}m"


def summary_tables(report: dict[str, Any]) -> list[Table]:
    """The terminal summary: headline metrics, then per symbol and per agent."""
    m = report["metrics"]
    dd = m["max_drawdown"]
    data, venue = report["data"], report["venue"]
    head = Table(title=f"Backtest {data['source']} ({data['from']} .. {data['to']}, {data['quotes']} quotes)")
    head.add_column("metric")
    head.add_column("value", justify="right")
    rows = [
        ("initial / final equity", f"{m['initial_equity']} / {m['final_equity']}"),
        ("total return", _pct(m["total_return"])),
        ("buy and hold", _pct(m["buy_and_hold_return"])),
        ("CAGR", _pct(m["cagr"])),
        ("annualised volatility", _pct(m["annualised_volatility"])),
        ("Sharpe / Sortino / Calmar", " / ".join(_ratio(m[k]) for k in ("sharpe", "sortino", "calmar"))),
        ("max drawdown", f"{_pct(dd['depth'])} over {_duration(dd['duration_seconds'])}"),
        ("trades (open)", f"{m['trades']} ({m['open_trades']})"),
        ("win rate / profit factor", f"{_pct(m['win_rate'])} / {_ratio(m['profit_factor'])}"),
        ("expectancy per trade", m["expectancy"] or "n/a"),
        ("average holding", _duration(m["average_holding_seconds"])),
        ("exposure", _pct(m["exposure"])),
        (
            "signals / orders / fills / refused",
            f"{m['signals']} / {m['orders']} / {m['fills']} / {m['refused_orders']}",
        ),
        ("fees", m["fees"]),
        ("venue", f"paper, fee {venue['fee_bps']} bps, slippage {venue['slippage_bps']} bps (market orders)"),
    ]
    for name, value in rows:
        head.add_row(name, value)
    symbols = Table(title="Per symbol")
    for column in (
        "symbol",
        "signals",
        "orders",
        "fills",
        "fees",
        "realized PnL",
        "position",
        "price change",
    ):
        symbols.add_column(column, justify="left" if column == "symbol" else "right")
    for row in report["per_symbol"]:
        symbols.add_row(
            row["symbol"],
            str(row["signals"]),
            str(row["orders"]),
            str(row["fills"]),
            row["fees"],
            row["realized_pnl"],
            row["final_position"],
            _pct(row["price_change"]),
        )
    agents = Table(title="Per agent")
    for column in ("agent", "role", "signals", "long/short/flat", "orders", "attributed PnL"):
        agents.add_column(column, justify="left" if column in ("agent", "role") else "right")
    for row in report["per_agent"]:
        agents.add_row(
            row["agent"],
            row["role"],
            str(row["signals"]),
            f"{row['long']}/{row['short']}/{row['flat']}",
            str(row["orders"]),
            row["attributed_realized_pnl"],
        )
    return [head, symbols, agents]
