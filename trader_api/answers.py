"""How the services' errors become HTTP answers: one home for the FastAPI exception
handlers (``app.py``) and the lean routes (``lean_routes.py``), so both word an
error the same way."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi.responses import JSONResponse

from sapphire.trader_api import errors

log = logging.getLogger(__name__)

DATABASE_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError)


def error_answer(error: Exception) -> JSONResponse | None:
    """The answer to ``error``, or ``None`` for an error that is not the API's to word (a bug: 500)."""
    if isinstance(error, errors.FieldError):
        # The same shape as FastAPI's own validation errors, so clients parse one format.
        detail = [{"loc": error.loc, "msg": error.field_message, "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=422)
    if isinstance(error, errors.RiskRefusedError):
        return JSONResponse({"detail": error.message, "rule": error.rule}, status_code=422)
    if isinstance(error, errors.UnavailableError):
        return JSONResponse({"detail": error.message}, status_code=503, headers={"Retry-After": "1"})
    if isinstance(error, errors.TraderApiError):
        return JSONResponse({"detail": error.message}, status_code=error.status_code)
    if isinstance(error, DATABASE_ERRORS):
        log.warning("database unavailable: %s", error)
        return JSONResponse({"detail": "database unavailable"}, status_code=503, headers={"Retry-After": "1"})
    return None
