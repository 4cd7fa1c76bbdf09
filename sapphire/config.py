"""Settings shared by every deployable: dev mode, logging, typed DSNs and secret hygiene.

Each deployable (trader API, agent, operator) has one pydantic-settings class that derives
from :class:`ServiceSettings`. Settings are built when a command starts, never at import
time, so tests can build them with overrides.

A secret that still holds a placeholder (``changeme`` and friends, or nothing at all) makes
the service refuse to start unless dev mode is on: the seed ran with open admin routes
because a token was unset.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AnyUrl, SecretStr, UrlConstraints, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "secret", "password", "xxx", "todo"}
)

DatabaseDsn = Annotated[
    AnyUrl,
    UrlConstraints(
        allowed_schemes=["postgresql", "postgresql+psycopg", "sqlite", "sqlite+aiosqlite"],
    ),
]
"""A database URL: Postgres in production, SQLite for the embedded local mode."""

RedisUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["redis", "rediss", "memory"])]
"""A Redis URL; ``memory://`` selects the in-process bus of the local mode."""

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s]+)(?P<tail>@)")


def redact_url(text: str) -> str:
    """Replace the password of every URL in ``text`` with ``***``."""
    return _URL_PASSWORD.sub(r"\g<head>***\g<tail>", text)


class PlaceholderSecretError(ValueError):
    """A secret setting still holds a placeholder value outside dev mode (pydantic reports it
    inside its ValidationError, naming the field and the variable to set)."""


class ServiceSettings(BaseSettings):
    """Settings every Sapphire process has."""

    model_config = SettingsConfigDict(
        env_prefix="SAPPHIRE_",
        env_file=None,
        extra="ignore",
        secrets_dir=None,
        validate_default=True,
    )

    dev_mode: bool = False
    """Allow placeholder secrets and verbose errors. Never set it in production."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    """``auto`` writes readable lines on a terminal and JSON everywhere else."""

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ServiceSettings:
        if self.dev_mode:
            return self
        for name, value in self:
            if (
                isinstance(value, SecretStr)
                and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS
            ):
                env = f"{self.model_config.get('env_prefix', '')}{name}".upper()
                raise PlaceholderSecretError(
                    f"{name}: a real secret is required (set {env}), or set SAPPHIRE_DEV_MODE=true"
                )
        return self

    def redacted(self) -> dict[str, Any]:
        """The effective settings as plain data, with every secret and URL password hidden."""
        shown: dict[str, Any] = {}
        for name, value in self:
            if isinstance(value, SecretStr):
                shown[name] = "***" if value.get_secret_value() else ""
            elif isinstance(value, AnyUrl):
                shown[name] = redact_url(str(value))
            elif isinstance(value, (list, tuple, frozenset, set)):
                shown[name] = [str(v) for v in value]
            elif isinstance(value, (str, int, float, bool)) or value is None:
                shown[name] = value
            else:
                shown[name] = redact_url(str(value))
        return shown
