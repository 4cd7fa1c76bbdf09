"""The project's operator package and the standard library's ``operator`` live side by side."""

from __future__ import annotations

import operator
import os
import subprocess
import sys
from pathlib import Path

import sapphire.operator.settings

REPOSITORY = Path(__file__).resolve().parents[2]


def test_stdlib_operator_and_project_operator_in_one_process() -> None:
    assert operator.itemgetter(1)(("a", "b")) == "b"
    assert sapphire.operator.settings.OperatorSettings.__module__ == "sapphire.operator.settings"
    assert Path(sapphire.operator.settings.__file__).resolve().parent == REPOSITORY / "operator"


def test_python_dash_m_from_the_repository_root_keeps_stdlib_operator() -> None:
    # `python -m` puts the current directory first on sys.path, where operator/ lives.
    code = "import operator, sapphire.operator.settings; print(operator.itemgetter(0)('ok'))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "o"
    version = subprocess.run(
        [sys.executable, "-m", "sapphire", "--version"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("sapphire ")


def test_agents_package_is_ours() -> None:
    import sapphire.agents.settings

    assert Path(sapphire.agents.settings.__file__).resolve().parent == REPOSITORY / "agents"
