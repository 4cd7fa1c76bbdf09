"""``sapphire migrate``: what the MigrationRun pod runs, reporting through its termination log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from sapphire.migrations import config

SAPPHIRE = str(Path(sys.executable).parent / "sapphire")


def migrate(database_url: str, *args: str, termination_log: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SAPPHIRE, "migrate", "--termination-log", str(termination_log), *args],
        env={**os.environ, "DATABASE_URL": database_url, "SAPPHIRE_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_upgrade_reports_from_to_applied_and_lineage(database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    result = migrate(database_url, termination_log=log)
    assert result.returncode == 0, result.stderr
    report = json.loads(log.read_text())
    head = config.head()
    assert report["from"] is None
    assert report["to"] == head
    assert report["applied"][-1] == head
    assert report["revisions"][0] == head
    with psycopg.connect(database_url) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchone() == (head,)
    again = migrate(database_url, termination_log=log)
    assert again.returncode == 0, again.stderr
    assert json.loads(log.read_text())["applied"] == []


def test_downgrade_to_base_reports_what_it_reverted(database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    assert migrate(database_url, termination_log=log).returncode == 0
    result = migrate(database_url, "--direction", "downgrade", "--revision", "base", termination_log=log)
    assert result.returncode == 0, result.stderr
    report = json.loads(log.read_text())
    assert report["to"] is None
    assert report["revisions"] == []
    assert config.head() in report["applied"]


def test_a_failure_exits_non_zero_with_the_password_redacted(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    url = "postgresql://sapphire:hunter2-secret@127.0.0.1:1/nowhere"
    result = migrate(url, termination_log=log)
    assert result.returncode == 1
    assert "migration failed" in result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout + log.read_text()
    assert "OperationalError" in json.loads(log.read_text())["error"]


def test_sql_prints_the_migration_without_touching_the_database(database_url: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [SAPPHIRE, "migrate", "--sql"],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE alembic_version" in result.stdout
    with psycopg.connect(database_url) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema='public'"
        )
        assert tables.fetchone() == (0,)


def test_no_database_url_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SAPPHIRE_DATABASE_URL")}
    result = subprocess.run([SAPPHIRE, "migrate"], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "DATABASE_URL is not set" in result.stderr
