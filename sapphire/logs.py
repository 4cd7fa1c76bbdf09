"""Structured logging: JSON lines when not on a terminal, readable lines on one.

Every record passes through :class:`RedactingFilter`, so a database URL that reaches a
log message never carries its password out of the process.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from sapphire import config

_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Hides URL passwords in messages and extra fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = config.redact_url(record.getMessage())
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, config.redact_url(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = config.redact_url(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(
    *,
    level: str = "INFO",
    log_format: Literal["auto", "json", "console"] = "auto",
) -> None:
    """Install one handler on the root logger. Safe to call more than once."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    handler: logging.Handler
    if use_json:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    else:
        from rich.logging import RichHandler

        handler = RichHandler(rich_tracebacks=False, show_path=False)
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
