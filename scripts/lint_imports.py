"""``lint-imports`` (import-linter) over the ``sapphire`` package, portions included.

operator/, trader_api/, agents/ and migrations/ are namespace portions with no ``__init__.py``
on purpose (ARCHITECTURE.md: operator/ must never be importable, or type-checked, as the
standard library's ``operator``); sapphire/ reaches them through symlinks. grimp, which builds
import-linter's graph, does not look inside a folder without ``__init__.py`` that sits in a
regular package, so it would see none of them and every contract about them would pass
vacuously. This runs import-linter with a grimp module finder that takes such folders in as
namespace packages, as Python itself imports them. Arguments are lint-imports' own.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Set

import grimp.application.config
import grimp.main  # configures grimp's default adaptors, which the finder below then adjusts
from grimp.adaptors.modulefinder import ModuleFinder
from importlinter import cli


class PortionModuleFinder(ModuleFinder):
    """grimp's finder, descending into every folder named like a module (symlinks followed)."""

    def _get_python_files_and_namespace_dirs_inside_package(
        self, directory: str
    ) -> tuple[Iterable[str], Set[str]]:
        python_files: list[str] = []
        namespace_candidates: list[str] = []
        for dirpath, dirs, files in self.file_system.walk(directory):
            dirs[:] = [name for name in dirs if not self._should_ignore_dir(name)]
            if "__init__.py" not in files:
                namespace_candidates.append(dirpath)
            python_files.extend(
                self.file_system.join(dirpath, name) for name in files if self._is_python_file(name, dirpath)
            )
        return python_files, self._determine_namespace_dirs(namespace_candidates, python_files)


if __name__ == "__main__":
    grimp.application.config.settings.configure(MODULE_FINDER=PortionModuleFinder())
    sys.exit(cli.lint_imports_command())
