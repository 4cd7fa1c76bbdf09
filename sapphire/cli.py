"""The ``sapphire`` command: one entry point for every role the single image plays.

Commands import their implementation lazily, so ``sapphire --version`` and
``sapphire config show`` stay fast and need no cluster, database or Redis.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import pydantic
import typer

import sapphire
from sapphire import collector, config, logs
from sapphire.domain.migration import Direction

SettingsT = TypeVar("SettingsT", bound=config.ServiceSettings)

app = typer.Typer(
    name="sapphire",
    help="Sapphire: a Kubernetes-native, multi-agent AI trading platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")
operator_app = typer.Typer(
    help="The kopf operator for TradingAgents and MigrationRuns.", no_args_is_help=True
)
app.add_typer(operator_app, name="operator")
data_app = typer.Typer(help="Market data for backtests.", no_args_is_help=True)
app.add_typer(data_app, name="data")
agent_app = typer.Typer(help="Run one trading agent (analyst or executor).", no_args_is_help=True)
app.add_typer(agent_app, name="agent")
crds_app = typer.Typer(help="CustomResourceDefinitions generated from the spec models.", no_args_is_help=True)
app.add_typer(crds_app, name="crds")


class Service(StrEnum):
    TRADER_API = "trader-api"
    AGENT = "agent"
    OPERATOR = "operator"
    NEWS_FEED = "news-feed"
    MARKET_FEED = "market-feed"
    NOTIFY = "notify"


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error (never a traceback) and exit."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def settings_class_for(service: Service) -> type[config.ServiceSettings]:
    """The settings class of one deployable, imported lazily."""
    if service is Service.TRADER_API:
        from sapphire.trader_api import settings as trader_api_settings

        return trader_api_settings.TraderApiSettings
    if service is Service.AGENT:
        from sapphire.agents import settings as agent_settings

        return agent_settings.AgentSettings
    if service is Service.NEWS_FEED:
        from sapphire.news import settings as news_settings

        return news_settings.NewsFeedSettings
    if service is Service.MARKET_FEED:
        from sapphire.feed import settings as feed_settings

        return feed_settings.MarketFeedSettings
    if service is Service.NOTIFY:
        from sapphire.notify import settings as notify_settings

        return notify_settings.NotifySettings
    from sapphire.operator import settings as operator_settings

    return operator_settings.OperatorSettings


def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """Build one deployable's settings, turning validation errors into a clear message."""
    try:
        settings = settings_class()
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or settings_class.__name__}: {issue['msg']}"
            for issue in error.errors(include_url=False)
        )
        fail(f"invalid {settings_class.__name__}: {config.redact_url(problems)}")
    logs.configure_logging(level=settings.log_level, log_format=settings.log_format)
    return settings


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sapphire {sapphire.__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Sapphire: a Kubernetes-native, multi-agent AI trading platform."""


@config_app.command("show")
def config_show(
    service: Annotated[
        Service, typer.Argument(help="Which deployable's settings to show.")
    ] = Service.TRADER_API,
) -> None:
    """Print the effective settings as JSON, with secrets redacted."""
    settings = load_settings(settings_class_for(service))
    typer.echo(json.dumps(settings.redacted(), indent=2, sort_keys=True))


@crds_app.command("generate")
def crds_generate(
    out: Annotated[
        pathlib.Path, typer.Option("--out", help="Directory to write the CRD YAML files into.")
    ] = pathlib.Path("crds"),
) -> None:
    """Write crds/*.yaml from the TradingAgent and MigrationRun models."""
    from sapphire.resources import crdgen

    for path in crdgen.write_crds(out):
        typer.echo(f"wrote {path}")


@app.command("api")
def api() -> None:
    """Serve the trader API (uvicorn) with the settings from the environment."""
    from sapphire.trader_api.server import serve
    from sapphire.trader_api.settings import TraderApiSettings

    serve(load_settings(TraderApiSettings))


@agent_app.command("run")
def agent_run() -> None:
    """Run one agent configured by SAPPHIRE_* env (role, symbols, API, Redis, model, risk)."""
    import uvloop

    from sapphire.agents import runtime
    from sapphire.agents.settings import AgentSettings

    settings = load_settings(AgentSettings)
    collector.settle_for_service()
    # /metrics, /healthz and /readyz are served by the agent itself, on SAPPHIRE_METRICS_PORT.
    if uvloop.run(runtime.run_agent(settings)):  # uvloop: a tick costs less of the loop's time
        raise typer.Exit(1)  # unhealthy: the reason is in the log and the termination message


FEED_SOURCES = ("simulated", "replay", "news")
"""The built-in sources of ``sapphire feed``; ``ccxt:<exchange>`` is the live one."""


@app.command("feed")
def feed(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            envvar="SAPPHIRE_FEED_SOURCE",
            help="simulated: a seeded random walk of the API's instruments; replay: a CSV of ticks "
            "(--data); ccxt:<exchange> (ccxt:binance): the exchange's live tickers, websocket where "
            "ccxt has one, REST polling otherwise; all into /v1/ticks. news: RSS/Atom headlines into "
            "/v1/headlines.",
        ),
    ],
    data: Annotated[
        Path | None, typer.Option("--data", help="replay: the CSV of ticks (symbol,bid,ask,last,size,ts).")
    ] = None,
    shift: Annotated[
        str | None,
        typer.Option(
            "--shift",
            help="replay: move every timestamp by this many seconds, or by what puts the first tick "
            "at `now`. Without it the recorded timestamps are kept.",
        ),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed", min=0, help="Send ticks this many times faster than their spacing (0: at once)."
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="news: poll every feed once, print the totals, exit.")
    ] = False,
) -> None:
    """Run a feed into the trader API, configured by SAPPHIRE_* env (see sapphire config show market-feed
    or news-feed)."""
    import asyncio
    import dataclasses

    if source not in FEED_SOURCES and not source.startswith("ccxt:"):
        fail(f"--source: expected {', '.join(FEED_SOURCES)} or ccxt:<exchange>, got {source!r}")
    if source == "news":
        from sapphire.news import feed as news_feed
        from sapphire.news.settings import NewsFeedSettings

        news_settings = load_settings(NewsFeedSettings)
        try:
            totals = asyncio.run(news_feed.run_news_feed(news_settings, once=once))
        except news_feed.NewsFeedError as error:
            fail(str(error), code=1)
        if once:
            typer.echo(json.dumps(dataclasses.asdict(totals), sort_keys=True))
        return
    if once:
        fail("--once: only the news feed polls; a market feed runs until its source ends or it is stopped")
    import uvloop

    from sapphire.feed import runner
    from sapphire.feed.settings import MarketFeedSettings

    try:
        runner.check_source(source)
    except runner.FeedError as error:
        fail(str(error))
    settings = load_settings(MarketFeedSettings)
    overrides = {"feed_replay_path": data, "feed_shift": shift, "feed_speed": speed}
    try:
        settings = MarketFeedSettings.model_validate(
            {**settings.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
        )
    except pydantic.ValidationError as error:
        fail("; ".join(str(issue["msg"]) for issue in error.errors(include_url=False)))
    collector.settle_for_service()
    try:
        market_totals = uvloop.run(runner.run_market_feed(settings, source))
    except runner.FeedError as error:
        fail(str(error), code=1)
    typer.echo(json.dumps(dataclasses.asdict(market_totals), sort_keys=True))


@app.command("notify")
def notify() -> None:
    """Send notifications (halts, large fills, degraded agents, failed migrations, daily PnL)
    through Apprise, configured by SAPPHIRE_NOTIFY_* env (see sapphire config show notify)."""
    import asyncio

    from sapphire.notify import service
    from sapphire.notify.settings import NotifySettings

    settings = load_settings(NotifySettings)
    try:
        asyncio.run(service.run_notifier(settings))
    except ValueError as error:  # an Apprise URL it cannot load, named by position
        fail(str(error))


@operator_app.command("run")
def operator_run() -> None:
    """Run the kopf operator (namespaced unless SAPPHIRE_CLUSTER_WIDE=true)."""
    from sapphire.operator.main import run_operator
    from sapphire.operator.settings import OperatorSettings

    run_operator(load_settings(OperatorSettings))


@app.command("up")
def up(
    file: Annotated[
        Path, typer.Option("-f", "--file", help="TradingAgent YAML: one file, or a directory of *.yaml.")
    ],
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="API and dashboard port (0: any).")
    ] = 8000,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    duration: Annotated[
        float | None, typer.Option("--duration", min=0.1, help="Stop by itself after this many seconds.")
    ] = None,
    speed: Annotated[
        float,
        typer.Option("--speed", min=0.1, max=100, help="Run simulated time faster: ticks, analysis, decay."),
    ] = 1.0,
    live: Annotated[bool, typer.Option("--live/--no-live", help="Redraw the summary in place.")] = True,
    json_summary: Annotated[bool, typer.Option("--json", help="Print the final summary as JSON.")] = False,
    database_file: Annotated[
        Path, typer.Option("--database-file", help="SQLite file when DATABASE_URL is unset.")
    ] = Path("sapphire.db"),
    reset: Annotated[
        bool, typer.Option("--reset", help="Start from a fresh paper account (SQLite).")
    ] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")] = "WARNING",
) -> None:
    """Run the whole platform locally: the trader API, a simulated feed and the agents in FILE."""
    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        fail(f"--log-level: expected DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    logs.configure_logging(level=log_level.upper(), log_format="auto")
    from sapphire.up import plan, runner, setup

    options = setup.Options(
        path=file,
        host=host,
        port=port,
        duration=duration,
        speed=speed,
        live=live,
        json_summary=json_summary,
        database_file=database_file,
        reset=reset,
    )
    collector.settle_for_service()
    try:
        runner.run(options)
    except (plan.PlanError, setup.UpError) as error:
        fail(str(error))
    except KeyboardInterrupt:  # only before the loop runs; inside it Ctrl-C stops cleanly
        fail("interrupted", code=130)


@data_app.command("download")
def data_download(
    exchange: Annotated[str, typer.Option("--exchange", help="A ccxt exchange id, e.g. binance, kraken.")],
    symbols: Annotated[
        str,
        typer.Option(
            "--symbols",
            help="Sapphire symbols, comma separated (BTC-USD is BTC/USDT; see ccxt_quote_currencies).",
        ),
    ],
    since: Annotated[str, typer.Option("--since", help="First bar's open, ISO-8601 (UTC if no zone).")],
    until: Annotated[
        str | None,
        typer.Option("--until", help="Bars that open before this and have closed by it; default now."),
    ] = None,
    timeframe: Annotated[
        str, typer.Option("--timeframe", help="Bar length as ccxt names it (1m, 5m, 1h, 1d).")
    ] = "1m",
    output: Annotated[Path, typer.Option("--output", "-o", help="The Parquet file to write.")] = Path(
        "bars.parquet"
    ),
) -> None:
    """Download OHLCV bars through ccxt into Parquet, for `sapphire backtest --data`."""
    import asyncio

    from sapphire.backtest import command, download, replay

    try:
        start = command.parse_time(since, "--since")
        end = command.parse_time(until, "--until")
        wanted = [s.strip().upper() for s in symbols.split(",") if s.strip()]
        if not wanted or start is None:
            raise download.DownloadError("--symbols: give at least one symbol")
        done = asyncio.run(
            download.download(
                exchange_id=exchange,
                symbols=wanted,
                timeframe=timeframe,
                since=start,
                until=end,
                output=output,
            )
        )
    except (download.DownloadError, replay.BacktestError) as error:
        fail(str(error))
    for symbol, count in done.bars.items():
        typer.echo(f"{symbol}: {count} bars")
    period = f"{done.first:%Y-%m-%d %H:%M} .. {done.last:%Y-%m-%d %H:%M} UTC"
    typer.echo(f"wrote {done.path} ({period}), sha256 {done.sha256}")


@app.command("backtest")
def backtest(
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="CSV of ticks (symbol,bid,ask,last,size,ts) or OHLCV bars "
            "(symbol,ts,open,high,low,close,volume), or Parquet with the same columns; a path "
            "or an http(s) URL.",
        ),
    ],
    file: Annotated[
        Path | None,
        typer.Option("-f", "--file", help="TradingAgent YAML: one file, or a directory of *.yaml."),
    ] = None,
    agents_env: Annotated[
        str | None,
        typer.Option(
            "--agents-env",
            help="Read the TradingAgent YAML from this environment variable instead of -f "
            "(how a BacktestRun's pod gets its agents).",
        ),
    ] = None,
    data_sha256: Annotated[
        str | None, typer.Option("--data-sha256", help="Fail unless the data has this SHA-256 (hex).")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Replay from this ISO-8601 time (UTC if no zone), inclusive.")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Replay up to this time, exclusive.")] = None,
    timeframe: Annotated[
        int, typer.Option("--timeframe", min=1, help="Length of one bar in seconds (bar data).")
    ] = 60,
    spread_bps: Annotated[
        str,
        typer.Option("--spread-bps", help="Bid/ask spread put around bar prices, a decimal in [0, 1000]."),
    ] = "2",
    sample_seconds: Annotated[
        int, typer.Option("--sample-seconds", min=1, help="Equity is sampled this often for the metrics.")
    ] = 60,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory for report.json and report.html.")
    ] = Path("backtest-report"),
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    llm_cache: Annotated[
        Path | None,
        typer.Option(
            "--llm-cache",
            help="Answer agents' spec.model from this directory of cached answers (keyed on model and "
            "prompt), so a rerun is free and deterministic. Without it, models are left out.",
        ),
    ] = None,
    llm_miss: Annotated[
        str,
        typer.Option(
            "--llm-miss",
            help="A question not in --llm-cache: abstain (the analyst acts as on a failed call) or call "
            "(ask the model, credentials from SAPPHIRE_MODEL_*, and store the answer).",
        ),
    ] = "abstain",
    termination_log: Annotated[
        Path | None,
        typer.Option(
            "--termination-log",
            help="Where to write the headline figures (JSON) or the error: a pod's terminationMessagePath.",
        ),
    ] = None,
) -> None:
    """Replay history through the agents in FILE, the executor and the paper venue; write a report."""
    from rich.console import Console

    from sapphire.backtest import command, replay, report
    from sapphire.domain import headline

    console = Console()
    try:
        if (file is None) == (agents_env is None):
            raise replay.BacktestError("-f: give exactly one of -f and --agents-env")
        options = command.Options(
            path=file,
            agents_env=agents_env,
            data=data,
            data_sha256=data_sha256,
            start=command.parse_time(start, "--from"),
            end=command.parse_time(end, "--to"),
            timeframe_seconds=timeframe,
            spread_bps=command.parse_spread(spread_bps),
            sample_seconds=sample_seconds,
            output=output,
            progress=progress,
            llm_cache=llm_cache,
            llm_miss=command.parse_on_miss(llm_miss),
        )
        built = command.run(options, console)
    except replay.BacktestError as error:
        if termination_log is not None:
            termination_log.write_text(headline.Headline(error=str(error)).to_json())
        fail(str(error))
    if termination_log is not None:
        termination_log.write_text(headline.Headline.of_report(built).to_json())
    for notice in built["notices"]:
        console.print(f"[dim]note: {notice}[/dim]")
    for table in report.summary_tables(built):
        console.print(table)
    console.print(f"report: {output / 'report.json'}")


@app.command("migrate")
def migrate(
    revision: Annotated[
        str, typer.Option("--revision", help="Target: head, a revision id, or base.")
    ] = "head",
    direction: Annotated[Direction, typer.Option("--direction")] = Direction.UPGRADE,
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL instead of running it (dry run).")
    ] = False,
    termination_log: Annotated[
        Path | None,
        typer.Option(
            "--termination-log", help="Where to write the JSON report (a pod's terminationMessagePath)."
        ),
    ] = None,
    lock_timeout: Annotated[
        float, typer.Option("--lock-timeout", min=0.1, help="Seconds to wait for another migration's lock.")
    ] = 60.0,
) -> None:
    """Migrate the database in DATABASE_URL with alembic, under the migration lock."""
    import os

    from sapphire.migrations import runner
    from sapphire.migrations.report import MigrationReport

    database_url = os.environ.get("SAPPHIRE_DATABASE_URL") or os.environ.get("DATABASE_URL") or ""
    if not database_url:
        fail("DATABASE_URL is not set")
    logs.configure_logging(level="INFO", log_format="auto")
    if sql:
        runner.offline_sql(database_url, revision=revision, direction=direction)
        return
    try:
        report = runner.migrate(
            database_url, revision=revision, direction=direction, lock_timeout_seconds=lock_timeout
        )
    except Exception as error:  # any failure is reported, redacted, as exit code 1
        message = runner.redacted_error(error, database_url)
        with contextlib.suppress(OSError):  # the error is on stderr either way
            runner.write_report(termination_log, MigrationReport(error=message))
        fail(f"migration failed: {message}", code=1)
    try:
        runner.write_report(termination_log, report)
    except OSError as error:
        fail(f"migrated, but could not write the report to {termination_log}: {error}", code=1)
    typer.echo(report.to_json())


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
