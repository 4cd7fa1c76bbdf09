"""``sapphire feed --source simulated|replay``: market data into the trader API, as its own process.

:mod:`sapphire.trader_api.feeds` holds the sources as pure generators (shared with the
backtest); :mod:`runner` paces their ticks by their own timestamps and posts them to the
API's ingest route; :mod:`settings` configures it."""
