"""Sapphire: a Kubernetes-native, multi-agent AI trading platform.

The top-level folders ``operator/``, ``trader_api/``, ``agents/`` and ``migrations/`` are
reached as ``sapphire.operator`` and so on, through symlinks in this package. A folder
named ``operator`` can never be imported as ``operator`` (the standard library's module
of that name is loaded at interpreter start), and ``agents`` is a popular SDK's name.
"""

from importlib import metadata

try:
    __version__ = metadata.version("sapphire")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

GROUP = "trading.sapphire-ai.com"
"""The API group of Sapphire's custom resources; also the prefix of our labels and annotations."""
