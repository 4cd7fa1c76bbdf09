"""``python -m bench.floor_app``: the bare HTTP floor of ``order_intake``.

A FastAPI app with one POST route that reads the JSON body (the benchmark sends the very
order bodies it sends the trader API) and answers a small JSON 201: no authentication, no
validation, no database. It is served by :func:`sapphire.trader_api.server.serve` itself, with
the app it creates replaced by this one, so uvicorn runs with exactly the settings of
``sapphire api`` (event loop, HTTP parser, proxy headers, logging from the same environment)
whatever they become. Should ``serve`` stop building its app through ``create_app``, the real
API would answer here: the benchmark then gets 404s on :data:`PATH` and says so.

The server module is imported with this module standing in for ``sapphire.trader_api.app``,
which saves importing the whole API (ten seconds and more on a busy two-core machine); if the
server module needs more from the app module than ``create_app``, the real one is imported
and ``create_app`` replaced in the server module instead.
"""

from __future__ import annotations

import sys
import types
from typing import Any
from unittest import mock

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

PATH = "/floor/orders"
APP_MODULE = "sapphire.trader_api.app"


def create_app() -> FastAPI:
    app = FastAPI(title="order_intake floor", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post(PATH)
    async def accept(request: Request) -> JSONResponse:
        order = await request.json()
        return JSONResponse({"client_order_id": order["client_order_id"], "status": "new"}, status_code=201)

    return app


def main() -> None:
    from sapphire import cli
    from sapphire.trader_api.settings import TraderApiSettings

    settings = cli.load_settings(TraderApiSettings)

    def floor_app(_: Any) -> FastAPI:
        return create_app()

    stand_in = types.ModuleType(APP_MODULE)
    stand_in.__dict__["create_app"] = floor_app
    sys.modules[APP_MODULE] = stand_in
    try:
        from sapphire.trader_api import server
    except ImportError:
        for name in (APP_MODULE, "sapphire.trader_api.server"):
            sys.modules.pop(name, None)
        from sapphire.trader_api import server
    with mock.patch.object(server, "create_app", floor_app):
        server.serve(settings)


if __name__ == "__main__":
    main()
