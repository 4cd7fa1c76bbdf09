"""Sapphire's custom resources: the pydantic models that are the single source of truth.

The operator, ``sapphire up`` and the generated CRDs in ``crds/`` all read these models:

- :mod:`sapphire.resources.tradingagent`: ``TradingAgentSpec``, ``TradingAgentStatus``;
- :mod:`sapphire.resources.migrationrun`: ``MigrationRunSpec``, ``MigrationRunStatus``;
- :mod:`sapphire.resources.common`: decimal strings, Secret references, conditions;
- :mod:`sapphire.resources.crdgen`: writes ``crds/*.yaml`` from the models.
"""

from sapphire.resources.common import VERSION

__all__ = ["VERSION"]
