"""Market data sources: the built-in ones as pure tick generators (simulated, CSV replay),
shared by the feed process (``sapphire feed``, :mod:`sapphire.feed`) and the backtest, and the
live ccxt source, shared by the feed process and the API's own feed (``feed=ccxt``)."""
