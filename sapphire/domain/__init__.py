"""Facts that more than one part of Sapphire states: each defined once here, and imported.

The CRD models (:mod:`sapphire.resources`), the trader API, the agents, the operator and the
command line all need, for example, what a symbol looks like or which ways a migration can go.
Written in each, the copies drift (a pattern widened in the API but not in the CRD lets the API
server admit a TradingAgent the trader API then refuses). This package is pure: standard
library only, no I/O, so anything may import it and it imports nothing of Sapphire.
"""
