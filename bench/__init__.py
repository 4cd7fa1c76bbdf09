"""Sapphire's benchmarks (``make bench``): tick-to-order latency, order intake, tick ingest
and operator scale, each against the real components and a floor measured in the same run.
See :mod:`bench.__main__` for how they are run and ``bench/results/`` for the last figures."""
