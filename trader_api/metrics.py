"""Prometheus metrics, in a registry per app (tests build many apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sapphire_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sapphire_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
        )
        self.ticks = Counter(
            "sapphire_ticks_ingested_total", "Ticks ingested", ["symbol"], registry=self.registry
        )
        self.orders = Counter(
            "sapphire_orders_total", "Order submissions by outcome", ["outcome"], registry=self.registry
        )
        self.risk_refusals = Counter(
            "sapphire_risk_refusals_total", "Orders refused by a risk rule", ["rule"], registry=self.registry
        )
        self.fills = Counter(
            "sapphire_fills_total", "Paper venue fills", ["symbol", "liquidity"], registry=self.registry
        )
        self.signals = Counter("sapphire_signals_total", "Signals stored", ["role"], registry=self.registry)
        self.equity = Gauge("sapphire_equity", "Account equity marked to market", registry=self.registry)
        self.risk_state = Gauge(
            "sapphire_risk_state",
            "1 for the current risk state, 0 for the others",
            ["state"],
            registry=self.registry,
        )
        self.batch_commands = Histogram(
            "sapphire_engine_batch_commands",
            "Commands the order engine committed per batch (group commit)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "sapphire_engine_batch_commit_seconds",
            "Time to commit one batch of the order engine's changes",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
            registry=self.registry,
        )
        self.venue_differences = Counter(
            "sapphire_venue_reconciliation_differences_total",
            "Differences reconciliation found between the engine and the live venue, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.venue_up = Gauge(
            "sapphire_venue_up", "1 while the live venue answers, 0 during an outage", registry=self.registry
        )
        self.venue_retries = Counter(
            "sapphire_venue_retries_total",
            "Requests to the live venue retried after a network error or timeout",
            ["operation"],
            registry=self.registry,
        )
        self.bus_errors = Counter(
            "sapphire_bus_unavailable_total",
            "Requests refused because Redis was down",
            registry=self.registry,
        )
