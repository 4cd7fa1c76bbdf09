"""The one image: its Dockerfile and build context, and the commands every workload runs.

There is no Docker engine here, so the image's entry points are exercised by running the
same ``sapphire`` commands from the installed package, the one the Dockerfile installs.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sapphire.operator import builders
from sapphire.operator.settings import OperatorSettings
from sapphire.resources import migrationrun, tradingagent
from tests.manifests.conftest import OVERLAYS, container, find, render
from tests.support import kube

REPOSITORY = kube.REPOSITORY
DOCKERFILE = REPOSITORY / "Dockerfile"
SAPPHIRE = str(Path(sys.executable).parent / "sapphire")


def instructions(stage: str | None = None) -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments) pairs, continuation lines joined; one stage
    (by its ``AS`` name) or all of them."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs: list[tuple[str, str]] = []
    current: str | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            current = rest.split(" AS ")[-1].strip() if " AS " in rest else None
        if stage is None or current == stage:
            pairs.append((keyword, " ".join(rest.split())))
    return pairs


def values(stage: str, keyword: str) -> list[str]:
    return [rest for instruction, rest in instructions(stage) if instruction == keyword]


class TestDockerfile:
    def test_it_has_a_build_stage_and_a_runtime_stage_on_slim_python_311(self) -> None:
        froms = [rest for instruction, rest in instructions() if instruction == "FROM"]
        assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
        argument = next(rest for instruction, rest in instructions() if instruction == "ARG")
        assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim(-\w+)?", argument)

    def test_the_runtime_runs_as_uid_10001_with_the_sapphire_entrypoint(self) -> None:
        assert values("runtime", "USER") == ["10001:10001"]
        assert [json.loads(entry) for entry in values("runtime", "ENTRYPOINT")] == [["sapphire"]]
        assert any("--uid 10001" in run for run in values("runtime", "RUN"))

    def test_the_runtime_copies_only_the_virtualenv_from_the_build(self) -> None:
        assert values("runtime", "COPY") == ["--from=build /opt/sapphire /opt/sapphire"]

    def test_dependencies_come_from_the_lock_file_before_the_package_without_its_deps(self) -> None:
        runs = values("build", "RUN")
        locked = next(i for i, run in enumerate(runs) if "--constraint requirements/lock.txt" in run)
        package = next(i for i, run in enumerate(runs) if "pip install --no-deps ." in run)
        assert locked < package
        copies = values("build", "COPY")
        assert "requirements/lock.txt requirements/lock.txt" in copies
        # The lock is copied before the source, so a code change does not reinstall everything.
        assert copies.index("requirements/lock.txt requirements/lock.txt") < copies.index("sapphire sapphire")

    def test_every_runtime_dependency_is_pinned_by_the_lock(self) -> None:
        pyproject = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())
        locked = {
            match.group(1).lower().replace("_", "-")
            for match in re.finditer(
                r"^([A-Za-z0-9_.-]+)==", (REPOSITORY / "requirements/lock.txt").read_text(), re.M
            )
        }
        for requirement in pyproject["project"]["dependencies"]:
            name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
            assert name in locked, f"{requirement} is not pinned in requirements/lock.txt"

    def test_the_symlinked_packages_are_copied_with_the_links(self) -> None:
        copied = {rest.split()[0] for rest in values("build", "COPY")}
        for link in (REPOSITORY / "sapphire").iterdir():
            if link.is_symlink():
                assert link.resolve().name in copied, f"sapphire/{link.name} -> {link.resolve().name}"


class TestBuildContext:
    def patterns(self) -> list[str]:
        lines = (REPOSITORY / ".dockerignore").read_text().splitlines()
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    def test_it_is_an_allow_list(self) -> None:
        assert self.patterns()[0] == "*"

    def test_everything_the_dockerfile_copies_is_allowed(self) -> None:
        allowed = {pattern[1:].rstrip("/") for pattern in self.patterns() if pattern.startswith("!")}
        for rest in values("build", "COPY"):
            *sources, _destination = rest.split()
            for source in sources:
                assert source.rstrip("/") in allowed, f"{source} is excluded from the build context"

    def test_secrets_and_tooling_stay_out(self) -> None:
        allowed = {pattern[1:].rstrip("/") for pattern in self.patterns() if pattern.startswith("!")}
        for path in (".git", ".venv", "tests", "manifests", "crds", ".env", "bench"):
            assert path not in allowed


class TestEntrypoints:
    def test_sapphire_help_lists_every_role_of_the_image(self) -> None:
        result = subprocess.run([SAPPHIRE, "--help"], capture_output=True, text=True, check=True, timeout=60)
        commands = set(re.findall(r"^│\s+(\S+)\s", result.stdout, re.M))
        assert {"api", "operator", "agent", "migrate"} <= commands, result.stdout

    @pytest.mark.parametrize(
        "command",
        [
            *(
                (overlay, "Deployment", name)
                for overlay in sorted(OVERLAYS)
                for name in ("sapphire-operator", "trader-api")
            ),
        ],
        ids=lambda item: "-".join(item),
    )
    def test_each_deployment_runs_a_command_the_image_has(self, command: tuple[str, str, str]) -> None:
        overlay, kind, name = command
        deployment = find(render(OVERLAYS[overlay]), kind, name)
        spec = deployment["spec"]["template"]["spec"]
        main = container(spec, spec["containers"][0]["name"])
        argv = [*main["command"], *main["args"]]
        assert argv[0] == "sapphire"
        self.assert_help_works(argv)

    def test_the_pods_the_operator_builds_run_commands_the_image_has(self) -> None:
        settings = OperatorSettings(namespaces=["trading"])
        agent = builders.build_agent_deployment(
            name="momentum",
            namespace="trading",
            spec=tradingagent.TradingAgentSpec.model_validate({"role": "momentum", "symbols": ["BTC-USD"]}),
            settings=settings,
        )
        migration = builders.build_migration_pod(
            name="to-head",
            namespace="trading",
            spec=migrationrun.MigrationRunSpec.model_validate(
                {
                    "revision": "head",
                    "database": {"name": "trading", "urlSecretRef": {"name": "db", "key": "url"}},
                }
            ),
            attempt=1,
            settings=settings,
        )
        for pod_spec in (agent["spec"]["template"]["spec"], migration["spec"]):
            main = pod_spec["containers"][0]
            self.assert_help_works([*main["command"], *main["args"]])

    @staticmethod
    def assert_help_works(argv: list[str]) -> None:
        """The whole command line plus ``--help``: click parses every option (an unknown one
        fails), then prints the help instead of running anything."""
        result = subprocess.run(
            [SAPPHIRE, *argv[1:], "--help"], capture_output=True, text=True, check=False, timeout=60
        )
        assert result.returncode == 0, f"{shlex.join(argv)}: {result.stderr}"
        assert "Usage:" in result.stdout
