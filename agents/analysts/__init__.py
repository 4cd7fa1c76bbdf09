"""The six analysts. :func:`build_analyst` maps a TradingAgent role to its class."""

from __future__ import annotations

from sapphire.agents.analysts.base import ROLES, Analyst, build_analyst

__all__ = ["ROLES", "Analyst", "build_analyst"]
