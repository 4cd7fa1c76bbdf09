"""The pure core of the trader API: matching, accounting, risk checks and bars.

Nothing here does I/O or reads a clock: callers pass the time in. That keeps the rules
that must be correct to the cent testable with hypothesis in milliseconds.
"""
