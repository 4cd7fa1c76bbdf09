"""Built-in market data sources as pure tick generators (simulated, CSV replay), shared by the
feed process (``sapphire feed``, :mod:`sapphire.feed`) and the backtest."""
