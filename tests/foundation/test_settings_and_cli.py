"""Settings refuse placeholder secrets, `sapphire config show` redacts, logs are structured."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest
from pydantic import SecretStr

from sapphire import logs
from sapphire.agents.settings import AgentSettings
from sapphire.operator.settings import OperatorSettings
from sapphire.trader_api.settings import TraderApiSettings

SAPPHIRE = str(Path(sys.executable).parent / "sapphire")


def run_sapphire(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SAPPHIRE_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    return subprocess.run(
        [SAPPHIRE, *args], env={**clean, **env}, capture_output=True, text=True, check=False, timeout=60
    )


@pytest.mark.parametrize("placeholder", ["", "changeme", "CHANGEME ", "secret"])
def test_the_trader_api_refuses_placeholder_tokens_outside_dev_mode(placeholder: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="read_token"):
        TraderApiSettings(
            read_token=SecretStr(placeholder), agent_token=SecretStr("a1"), admin_token=SecretStr("a2")
        )
    dev = TraderApiSettings(dev_mode=True, read_token=SecretStr(placeholder))
    assert dev.dev_mode


def test_the_agent_refuses_a_missing_token_and_the_operator_needs_none() -> None:
    with pytest.raises(pydantic.ValidationError, match="agent_token"):
        AgentSettings()
    assert OperatorSettings().trader_api_token is None


def test_config_show_redacts_secrets_and_url_passwords() -> None:
    result = run_sapphire(
        "config",
        "show",
        "trader-api",
        DATABASE_URL="postgresql+psycopg://trader:pa55word@db:5432/trading",
        SAPPHIRE_READ_TOKEN="read-tok-1",
        SAPPHIRE_AGENT_TOKEN="agent-tok-2",
        SAPPHIRE_ADMIN_TOKEN="admin-tok-3",
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["database_url"] == "postgresql+psycopg://trader:***@db:5432/trading"
    assert shown["admin_token"] == "***"
    for secret in ("pa55word", "read-tok-1", "agent-tok-2", "admin-tok-3"):
        assert secret not in result.stdout + result.stderr


def test_config_show_lists_the_venue_and_feed_with_the_venue_keys_masked() -> None:
    result = run_sapphire(
        "config",
        "show",
        "trader-api",
        SAPPHIRE_DEV_MODE="true",
        SAPPHIRE_VENUE="ccxt",
        SAPPHIRE_VENUE_EXCHANGE="kraken",
        SAPPHIRE_VENUE_API_KEY="venue-key-4",
        SAPPHIRE_VENUE_API_SECRET="venue-secret-5",
        SAPPHIRE_FEED="ccxt",
        SAPPHIRE_CCXT_QUOTE_CURRENCIES='{"USD": "USD"}',
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["venue"], shown["venue_exchange"], shown["feed"]) == ("ccxt", "kraken", "ccxt")
    assert (shown["venue_api_key"], shown["venue_api_secret"], shown["venue_api_password"]) == (
        "***",
        "***",
        None,
    )
    assert shown["ccxt_quote_currencies"] == {"USD": "USD"}
    for secret in ("venue-key-4", "venue-secret-5"):
        assert secret not in result.stdout + result.stderr
    keyless = run_sapphire("config", "show", "trader-api", SAPPHIRE_DEV_MODE="true", SAPPHIRE_VENUE="ccxt")
    assert keyless.returncode == 2
    assert "SAPPHIRE_VENUE_API_KEY" in keyless.stderr


def test_a_bad_setting_is_one_clear_line_naming_the_field() -> None:
    result = run_sapphire("config", "show", "trader-api", SAPPHIRE_DEV_MODE="true", SAPPHIRE_PORT="eighty")
    assert result.returncode == 2
    assert "port" in result.stderr
    assert "Traceback" not in result.stderr
    placeholder = run_sapphire("config", "show", "trader-api")
    assert placeholder.returncode == 2
    assert "SAPPHIRE_READ_TOKEN" in placeholder.stderr


def test_version() -> None:
    result = run_sapphire("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("sapphire 0.")


def test_logs_are_json_lines_without_url_passwords(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure_logging(level="INFO", log_format="json")
    try:
        logging.getLogger("sapphire.test").info(
            "connecting to %s", "postgresql://u:hunter2@db/x", extra={"agent": "momo"}
        )
    finally:
        logging.getLogger().handlers.clear()
    line = capsys.readouterr().err.strip().splitlines()[-1]
    entry = json.loads(line)
    assert entry["message"] == "connecting to postgresql://u:***@db/x"
    assert (entry["level"], entry["logger"], entry["agent"]) == ("INFO", "sapphire.test", "momo")
