"""Read Sapphire resources from YAML manifests, as ``kubectl apply -f`` would see them.

``sapphire up`` and the tests use this to run the very files a cluster receives.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from sapphire.resources import backtestrun, migrationrun, tradingagent

SapphireResource = tradingagent.TradingAgent | migrationrun.MigrationRun | backtestrun.BacktestRun

_MODELS: dict[str, type[SapphireResource]] = {
    tradingagent.KIND: tradingagent.TradingAgent,
    migrationrun.KIND: migrationrun.MigrationRun,
    backtestrun.KIND: backtestrun.BacktestRun,
}


class UnknownKindError(ValueError):
    """The document is not a Sapphire resource."""


def manifest_files(path: Path) -> list[Path]:
    """``path`` itself, or the ``*.yaml``/``*.yml`` files directly in it, sorted by name."""
    if path.is_dir():
        return sorted(child for child in path.iterdir() if child.suffix in (".yaml", ".yml"))
    return [path]


def load_documents(path: Path) -> Iterator[dict[str, Any]]:
    """Every non-empty YAML document in ``path`` (a file or a directory of files)."""
    for file in manifest_files(path):
        with file.open(encoding="utf-8") as stream:
            for document in yaml.safe_load_all(stream):
                if document:
                    yield document


def parse_resource(document: Mapping[str, Any]) -> SapphireResource:
    """Validate one document as a TradingAgent, MigrationRun or BacktestRun.

    Raises :class:`UnknownKindError` for other kinds and ``pydantic.ValidationError`` (whose
    messages name the field by its wire name) for invalid ones.
    """
    kind = document.get("kind")
    model = _MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise UnknownKindError(
            f"kind {kind!r} is not a Sapphire resource (expected one of {sorted(_MODELS)})"
        )
    return model.model_validate(document)
