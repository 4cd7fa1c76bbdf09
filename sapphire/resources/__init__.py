"""Sapphire's custom resources: the pydantic models that are the single source of truth.

The operator, ``sapphire up`` and the generated CRDs in ``crds/`` all read these models:

- :mod:`sapphire.resources.tradingagent`: ``TradingAgentSpec``, ``TradingAgentStatus``;
- :mod:`sapphire.resources.migrationrun`: ``MigrationRunSpec``, ``MigrationRunStatus``;
- :mod:`sapphire.resources.backtestrun`: ``BacktestRunSpec``, ``BacktestRunStatus``;
- :mod:`sapphire.resources.common`: decimal strings, Secret references, conditions;
- :mod:`sapphire.resources.crdgen`: writes ``crds/*.yaml`` from the models;
- :mod:`sapphire.resources.manifests`: reads them back from YAML files (``sapphire up``).

Every cross-field rule exists twice, side by side in the model: a CEL rule for the API server
and a pydantic validator for Python; ``tests/crds`` holds both to one corpus of invalid
manifests. Why the fields differ from the first design is in ``crds/README.md``.
"""

from sapphire.resources.common import VERSION

__all__ = ["VERSION"]
