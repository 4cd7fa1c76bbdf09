"""What a run's pod leaves in its termination message: one JSON object, read by the operator.

A MigrationRun's pod (:class:`sapphire.migrations.report.MigrationReport`) and a BacktestRun's
(:class:`sapphire.domain.headline.Headline`) report their result this way: the kubelet copies
the file at ``terminationMessagePath`` into the container's terminated state, where the operator
reads it, so the result survives the pod's sidecars and needs no log scraping.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

LIMIT = 4096
"""What a kubelet keeps of a termination message, in bytes."""


def dump(data: Mapping[str, object]) -> str:
    """``data`` as the message: JSON, keys sorted so equal results read alike."""
    return json.dumps(data, sort_keys=True)


def load(message: str) -> dict[str, Any] | None:
    """The JSON object in ``message``, or None when the message is not one (a crash's output)."""
    try:
        data = json.loads(message)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
