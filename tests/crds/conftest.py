"""Paths of the committed CRDs, examples and invalid corpus (``installed_crds`` is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
CRDS = REPOSITORY / "crds"
EXAMPLES = REPOSITORY / "manifests" / "examples"
INVALID = Path(__file__).resolve().parent / "invalid"
