"""``sapphire api``: serve the trader API with uvicorn."""

from __future__ import annotations

import uvicorn

from sapphire import collector
from sapphire.trader_api.app import create_app
from sapphire.trader_api.settings import TraderApiSettings


def serve(settings: TraderApiSettings) -> None:
    """Run until SIGTERM/SIGINT; logging is already configured by the CLI."""
    app = create_app(settings)
    collector.settle_for_service()  # the app is built: what it holds lives as long as the process
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
