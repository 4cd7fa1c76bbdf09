"""``/dashboard``: a live page over the API's own ``/v1`` routes and ``/v1/events`` (SSE).

The page and its assets hold no data and no token, so they are served without auth. The
browser asks for a token (or takes one from the URL fragment ``#token=...``, which never
reaches a server), keeps it in ``sessionStorage`` and sends it as ``Authorization: Bearer``
on every call, exactly as any other client. HALT / RESUME need an admin token that the
page asks for separately and keeps only in its input field.

Charts are plotly.js, served from the ``plotly`` wheel's own ``package_data`` (no CDN:
installations may have no internet). The Content-Security-Policy allows scripts only from
this origin and forbids framing, so the kill switch cannot be clickjacked.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

from sapphire.trader_api import errors

STATIC = Path(__file__).with_name("static")
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "plotly.min.js": "text/javascript; charset=utf-8",
}
SECURITY_HEADERS = {
    # plotly styles its SVG inline, hence 'unsafe-inline' for styles (never for scripts).
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(tags=["dashboard"], include_in_schema=False)


def plotly_js() -> Path:
    """plotly.min.js inside the installed ``plotly`` wheel."""
    return Path(str(importlib.resources.files("plotly") / "package_data" / "plotly.min.js"))


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard() -> HTMLResponse:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(html, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})


@router.get("/dashboard/static/{name}")
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise errors.NotFoundError(f"no dashboard asset {name!r}")
    path = plotly_js() if name == "plotly.min.js" else STATIC / name
    return FileResponse(
        path, media_type=media_type, headers={**SECURITY_HEADERS, "Cache-Control": "max-age=300"}
    )


def install(app: FastAPI) -> None:
    app.include_router(router)
