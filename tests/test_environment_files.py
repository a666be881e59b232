"""pyproject.toml (pip) and environment.yml (conda, Binder) must list the same packages with the same constraints."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"pytorch-cpu": "torch", "playwright-python": "playwright"}  # conda-forge names
SELF = "gradient-stability-lab"


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    requirements = [Requirement(line) for line in lines]
    return {r.name.lower(): str(r.specifier) for r in requirements if r.name != SELF}


def _environment() -> dict[str, str]:
    entries = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    found = {}
    for entry in entries:
        lines = entry["pip"] if isinstance(entry, dict) else [entry]
        for line in lines:
            if line.startswith("-e") or line.split("=")[0] in ("python", "pip"):
                continue
            requirement = Requirement(line.replace(" ", ""))
            found[CONDA_NAMES.get(requirement.name, requirement.name).lower()] = str(requirement.specifier)
    return found


def test_every_dependency_is_in_both_files_with_the_same_constraint():
    pip, conda = _pyproject(), _environment()
    assert sorted(pip) == sorted(conda), (
        f"only in pyproject: {set(pip) - set(conda)}; only in environment.yml: {set(conda) - set(pip)}")
    mismatched = {name: (pip[name], conda[name]) for name in pip if pip[name] != conda[name]}
    assert not mismatched, f"different constraints (pyproject, environment.yml): {mismatched}"


def test_environment_installs_this_package_and_pins_python():
    entries = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    assert "python=3.11" in entries
    assert any(isinstance(e, dict) and "-e ." in e["pip"] for e in entries)
    assert yaml.safe_load((ROOT / "environment.yml").read_text())["channels"] == ["conda-forge"]
