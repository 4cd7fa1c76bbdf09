"""Services: the trading logic's I/O shell. Routes call services; services call the pure
core and storage, and never reach back up to HTTP."""
