"""Bearer-token auth with three nested scopes: ``read`` < ``agent`` < ``admin``.

A token setting that is empty matches nothing, so no route is ever open because a setting
is missing (the seed's hole). Outside dev mode the settings refuse to start with a
placeholder token at all. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from enum import IntEnum

from fastapi import HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials

from sapphire.trader_api.settings import TraderApiSettings


class Scope(IntEnum):
    READ = 1
    AGENT = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


def granted_scope(settings: TraderApiSettings, token: str) -> Scope | None:
    """The scope ``token`` carries, or ``None`` when it matches no configured token."""
    granted: Scope | None = None
    for scope, secret in (
        (Scope.READ, settings.read_token),
        (Scope.AGENT, settings.agent_token),
        (Scope.ADMIN, settings.admin_token),
    ):
        expected = secret.get_secret_value()
        # Evaluate every comparison so timing does not reveal which token matched.
        if (
            expected
            and hmac.compare_digest(expected.encode(), token.encode())
            and (granted is None or scope > granted)
        ):
            granted = scope
    return granted


def authorize(
    settings: TraderApiSettings, credentials: HTTPAuthorizationCredentials | None, needed: Scope
) -> Scope:
    """The caller's scope; 401 without a valid bearer token, 403 when the scope is too low."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing bearer token (Authorization: Bearer <token>)", challenge
        )
    granted = granted_scope(settings, credentials.credentials)
    if granted is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid bearer token",
            {"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    if granted < needed:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"this route needs scope {needed.label}; the token has scope {granted.label}",
        )
    return granted
