"""Errors the services raise and the HTTP answers they become.

    TraderApiError
    ├── FieldError          422  bad input the schema could not catch; names the field
    ├── RiskRefusedError    422  a pre-trade risk rule refused the order; names the rule
    ├── NotFoundError       404
    ├── ConflictError       409  e.g. a client_order_id reused with a different body
    └── UnavailableError    503  Redis or the database does not answer; nothing was written

Risk refusals are 422 (the request is well-formed but cannot be processed now) with the
rule in a ``rule`` field, so a client can tell ``stale_quote`` from ``max_order_notional``.
"""

from __future__ import annotations

from collections.abc import Sequence


class TraderApiError(Exception):
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FieldError(TraderApiError):
    status_code = 422

    def __init__(self, loc: Sequence[str | int], message: str) -> None:
        super().__init__(f"{'.'.join(str(part) for part in loc)}: {message}")
        self.loc = list(loc)
        self.field_message = message


class RiskRefusedError(TraderApiError):
    status_code = 422

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"risk rule {rule} refused the order: {message}")
        self.rule = rule


class NotFoundError(TraderApiError):
    status_code = 404


class ConflictError(TraderApiError):
    status_code = 409


class UnavailableError(TraderApiError):
    status_code = 503
