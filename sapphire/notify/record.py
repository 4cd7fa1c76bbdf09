"""The durable record of notifications: what was claimed, tried and sent (SQLite).

One small file (on a volume in Kubernetes), written from one process. Rows never leave, so
the record also answers "were we told?" after the fact. States::

    pending --attempt--> pending (attempts n+1) --> sent | failed
    pending with attempts > 0 at start --> abandoned (it may have gone out: at most once)
"""

from __future__ import annotations

import datetime
import sqlite3
from pathlib import Path

from sapphire.notify.rules import Notification
from sapphire.notify.settings import Kind

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    event_id   TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    level      TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'abandoned')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TEXT NOT NULL,
    sent_at    TEXT
);
CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


class Record:
    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.executescript(SCHEMA)

    def close(self) -> None:
        self.connection.close()

    def claim(self, notification: Notification, *, fact: tuple[str, str] | None = None) -> bool:
        """Record ``notification`` as pending (and ``fact``, in the same transaction); False when
        its event was claimed before, in which case nothing changes."""
        with self.connection:
            self.connection.execute("BEGIN IMMEDIATE")
            inserted = self.connection.execute(
                "INSERT OR IGNORE INTO notifications (event_id, kind, title, body, level, state, created_at)"
                " VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                (
                    notification.event_id,
                    notification.kind.value,
                    notification.title,
                    notification.body,
                    notification.level,
                    _now(),
                ),
            ).rowcount
            if inserted and fact is not None:
                self._set(*fact)
        return bool(inserted)

    def attempt(self, event_id: str) -> None:
        """Count an attempt before it is made."""
        self.connection.execute(
            "UPDATE notifications SET attempts = attempts + 1 WHERE event_id = ?", (event_id,)
        )

    def finish(self, event_id: str, *, sent: bool, error: str | None = None) -> None:
        self.connection.execute(
            "UPDATE notifications SET state = ?, last_error = ?, sent_at = ? WHERE event_id = ?",
            ("sent" if sent else "failed", error, _now() if sent else None, event_id),
        )

    def recover(self) -> list[Notification]:
        """At start: the pending notifications never attempted (to send now); those attempted
        become ``abandoned``."""
        with self.connection:
            self.connection.execute("BEGIN IMMEDIATE")
            self.connection.execute(
                "UPDATE notifications SET state = 'abandoned' WHERE state = 'pending' AND attempts > 0"
            )
            rows = self.connection.execute(
                "SELECT event_id, kind, title, body, level FROM notifications"
                " WHERE state = 'pending' ORDER BY created_at"
            ).fetchall()
        return [Notification(row[0], Kind(row[1]), row[2], row[3], row[4]) for row in rows]

    def known(self, event_id: str) -> bool:
        return (
            self.connection.execute("SELECT 1 FROM notifications WHERE event_id = ?", (event_id,)).fetchone()
            is not None
        )

    def states(self) -> dict[str, tuple[str, int]]:
        """Every event id with its state and attempts (for operators and tests)."""
        rows = self.connection.execute("SELECT event_id, state, attempts FROM notifications").fetchall()
        return {row[0]: (row[1], row[2]) for row in rows}

    def fact(self, key: str) -> str | None:
        row = self.connection.execute("SELECT value FROM facts WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set(self, key: str, value: str) -> None:
        self.connection.execute(
            "INSERT INTO facts (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def set_fact(self, key: str, value: str) -> None:
        self._set(key, value)
