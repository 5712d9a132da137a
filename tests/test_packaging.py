"""The distributions of the monorepo agree: the top-level pyproject.toml is the one home of dependency pins, and
each service's (and shared's) pyproject.toml names a subset of them at the same versions; every package folder is
named as it is imported."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = ["shared", "services/registry", "services/subsidy", "services/reporting", "services/relay"]
_NAME = re.compile(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?")


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        name = _NAME.match(requirement).group(1).lower()
        pins[name] = requirement[_NAME.match(requirement).end() :].strip()
    return pins


def _project(folder: str) -> dict:
    return tomllib.loads((ROOT / folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]


TOP = _project(".")
TOP_PINS = _pins(TOP["dependencies"] + [r for extra in TOP["optional-dependencies"].values() for r in extra])


@pytest.mark.parametrize("folder", DISTRIBUTIONS)
def test_each_distribution_pins_what_the_top_level_pins(folder):
    project = _project(folder)
    requirements = project["dependencies"] + [
        r for extra in project.get("optional-dependencies", {}).values() for r in extra
    ]
    for name, pin in _pins(requirements).items():
        if name.startswith("tcr-"):
            continue  # a sibling distribution of this repository
        assert name in TOP_PINS, f"{folder}: {name} is not pinned in the top-level pyproject.toml"
        assert pin == TOP_PINS[name], f"{folder}: {name}{pin} differs from the top level's {name}{TOP_PINS[name]}"


@pytest.mark.parametrize("folder", DISTRIBUTIONS)
def test_package_folders_are_named_as_imported(folder):
    packages = [p.name for p in (ROOT / folder).iterdir() if (p / "__init__.py").exists()]
    expected = "tcr_shared" if folder == "shared" else "tcr_" + folder.rsplit("/", 1)[1]
    assert packages == [expected]


def test_console_scripts_point_at_modules_that_exist():
    import importlib

    for name, target in TOP["scripts"].items():
        module, _, function = target.partition(":")
        assert hasattr(importlib.import_module(module), function), f"{name} -> {target}"
