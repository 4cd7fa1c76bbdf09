"""The choices ``sapphire up`` makes before it starts anything: stores, tokens, settings, port.

All pure but :func:`bind` and :func:`migrate`, which are where a laptop says no (a busy
port, an unreachable database); both raise :class:`UpError` with one line for the user.
"""

from __future__ import annotations

import dataclasses
import secrets
import socket
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import pydantic

from sapphire import config
from sapphire.agents.settings import AgentSettings, spec_settings
from sapphire.feed.settings import MarketFeedSettings
from sapphire.trader_api.settings import DEFAULT_INSTRUMENTS, InstrumentConfig, TraderApiSettings
from sapphire.up import plan as plan_module

LOCAL_TICK_SIZE = Decimal("0.01")
LOCAL_LOT_SIZE = Decimal("0.0001")
"""Tick and lot of symbols the trader API has no defaults for (SOL-USD...)."""

EXECUTOR_HALF_LIFE_SECONDS = 120.0
"""The executor's signal decay at speed 1 (the agent's own default)."""


class UpError(RuntimeError):
    """``sapphire up`` cannot start; the message is one line for the user."""


@dataclasses.dataclass(frozen=True)
class Options:
    path: Path
    host: str = "127.0.0.1"
    port: int = 8000
    duration: float | None = None
    speed: float = 1.0
    """Simulated time runs this many times faster: ticks, analysis cadence, signal decay."""
    live: bool = True
    json_summary: bool = False
    database_file: Path = Path("sapphire.db")
    reset: bool = False
    refresh_seconds: float = 1.0


@dataclasses.dataclass(frozen=True)
class Stores:
    database_url: str
    redis_url: str
    description: str

    @property
    def in_process_bus(self) -> bool:
        return self.redis_url.startswith("memory:")


@dataclasses.dataclass(frozen=True)
class Tokens:
    read: str
    agent: str
    admin: str
    generated: bool


def choose_stores(options: Options, environ: Mapping[str, str]) -> Stores:
    """SQLite and the in-process bus, unless DATABASE_URL / REDIS_URL name real servers."""
    database_url = environ.get("SAPPHIRE_DATABASE_URL") or environ.get("DATABASE_URL")
    redis_url = environ.get("SAPPHIRE_REDIS_URL") or environ.get("REDIS_URL")
    parts = []
    if database_url:
        parts.append(f"database {config.redact_url(database_url)} (DATABASE_URL)")
    else:
        database_url = f"sqlite+aiosqlite:///{options.database_file.resolve()}"
        parts.append(f"database {options.database_file} (SQLite; --reset starts a fresh account)")
    if redis_url:
        parts.append(f"bus {config.redact_url(redis_url)} (REDIS_URL)")
    else:
        redis_url = "memory://"
        parts.append("in-process bus")
    return Stores(database_url=database_url, redis_url=redis_url, description=", ".join(parts))


def choose_tokens(environ: Mapping[str, str]) -> Tokens:
    """The SAPPHIRE_*_TOKEN variables when all three are set, else fresh random ones."""
    given = [environ.get(f"SAPPHIRE_{scope}_TOKEN", "") for scope in ("READ", "AGENT", "ADMIN")]
    if all(given):
        return Tokens(read=given[0], agent=given[1], admin=given[2], generated=False)
    read, agent, admin = (secrets.token_urlsafe(24) for _ in range(3))
    return Tokens(read=read, agent=agent, admin=admin, generated=True)


def instruments_for(symbols: tuple[str, ...]) -> list[InstrumentConfig]:
    known = {instrument.symbol: instrument for instrument in DEFAULT_INSTRUMENTS}
    return [
        known.get(symbol)
        or InstrumentConfig(symbol=symbol, tick_size=LOCAL_TICK_SIZE, lot_size=LOCAL_LOT_SIZE)
        for symbol in symbols
    ]


def api_settings(
    plan: plan_module.Plan, options: Options, stores: Stores, tokens: Tokens, *, port: int
) -> TraderApiSettings:
    """The trader API of this run: the plan's instruments, these tokens.

    Other ``SAPPHIRE_*`` variables (fees, slippage, risk limits...) still apply."""
    values = {
        "DATABASE_URL": stores.database_url,
        "REDIS_URL": stores.redis_url,
        "host": options.host,
        "port": port,
        "read_token": tokens.read,
        "agent_token": tokens.agent,
        "admin_token": tokens.admin,
        "instruments": instruments_for(plan.symbols),
    }
    try:
        return TraderApiSettings(**values)  # type: ignore[arg-type]  # aliases, as in the env
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}"
            for issue in error.errors(include_url=False)
        )
        raise UpError(
            f"trader API settings (SAPPHIRE_* environment): {config.redact_url(problems)}"
        ) from None


def agent_settings(
    agent: plan_module.LocalAgent, options: Options, stores: Stores, tokens: Tokens, prefix: str
) -> AgentSettings:
    """One TradingAgent's process settings, from the same translation the operator uses
    (:func:`spec_settings`), less the model (this run calls none) and sped up by ``--speed``."""
    fields = spec_settings(name=agent.name, spec=agent.spec)
    fields |= {"interval_seconds": agent.spec.interval_seconds / options.speed, "model_provider": ""}
    return AgentSettings(
        **fields,
        REDIS_URL=stores.redis_url,
        redis_key_prefix=prefix,
        agent_token=tokens.agent,
        heartbeat_seconds=5.0,
        backoff_max_seconds=5.0,
        executor_half_life_seconds=EXECUTOR_HALF_LIFE_SECONDS / options.speed,
        executor_decide_seconds=max(0.2, 1.0 / options.speed),
    )


def feed_settings(
    plan: plan_module.Plan, options: Options, tokens: Tokens, api_url: str
) -> MarketFeedSettings:
    """The simulated market feed of this run: the plan's symbols, one tick each per second of
    simulated time (``--speed`` makes that shorter)."""
    return MarketFeedSettings(
        trader_api_url=api_url,
        agent_token=tokens.agent,
        feed_symbols=list(plan.symbols),
        feed_interval_seconds=1.0 / options.speed,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one), or UpError."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise UpError(f"--host {host}: cannot resolve it ({error.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        sock.close()
        hint = "; pick another with --port" if port else ""
        raise UpError(f"--port {port}: cannot listen on {host}:{port} ({error.strerror}){hint}") from None
    sock.setblocking(False)
    return sock


def migrate(stores: Stores) -> None:
    """Bring the database to alembic head with the same revisions a MigrationRun applies."""
    from sapphire.migrations import config as migrations
    from sapphire.migrations import runner

    try:
        migrations.upgrade(stores.database_url)
    except Exception as error:  # any failure is the user's to see, in one redacted line
        raise UpError(
            f"database migration failed: {runner.redacted_error(error, stores.database_url)}"
        ) from None


def reset_database_file(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
