"""Where learners open the series besides a local JupyterLab: Binder and Colab.

The repository's address is written once, in pyproject.toml's ``[project.urls] Repository``; the README's
Binder and Colab links and every notebook's Colab install cell must agree with it.
"""

import os
import sys
import tomllib
import types
from pathlib import Path

import nbformat
import pytest
import yaml
from IPython.core.inputtransformer2 import TransformerManager
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
REPOSITORY = PROJECT["urls"]["Repository"]
GITHUB_PATH = REPOSITORY.removeprefix("https://github.com/")  # owner/name
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
INSTALL = f'install --quiet "{PROJECT["name"]} @ git+{REPOSITORY}"'
COLAB_CELL = f'''# Colab only: install this series' package (`helpers`) and turn on Colab's support for Jupyter widgets.
# Anywhere else (JupyterLab, Jupyter Notebook, VS Code, Binder) this cell does nothing.
import sys

if "google.colab" in sys.modules:
    %pip {INSTALL}
    from google.colab import output

    output.enable_custom_widget_manager()'''


def test_repository_is_a_github_address():
    assert REPOSITORY.startswith("https://github.com/") and GITHUB_PATH.count("/") == 1


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_first_code_cell_is_the_colab_installer(notebook):
    cells = nbformat.read(notebook, as_version=4).cells
    assert next(cell for cell in cells if cell.cell_type == "code").source == COLAB_CELL


class RecordingShell:
    """Stands in for IPython's ``get_ipython()``: records line magics instead of running them."""

    def __init__(self):
        self.magics = []

    def run_line_magic(self, name, line):
        self.magics.append((name, line))


def _run_colab_cell(monkeypatch, in_colab: bool):
    """Run the cell as IPython would; return (magics run, widget-manager calls, modules newly imported)."""
    shell, widget_calls = RecordingShell(), []
    if in_colab:
        output = types.ModuleType("google.colab.output")
        output.enable_custom_widget_manager = lambda: widget_calls.append("enabled")
        colab = types.ModuleType("google.colab")
        colab.output = output
        monkeypatch.setitem(sys.modules, "google.colab", colab)
        monkeypatch.setitem(sys.modules, "google.colab.output", output)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    before = set(sys.modules)
    exec(TransformerManager().transform_cell(COLAB_CELL), {"get_ipython": lambda: shell})
    return shell.magics, widget_calls, set(sys.modules) - before


def test_colab_cell_does_nothing_elsewhere(monkeypatch):
    assert _run_colab_cell(monkeypatch, in_colab=False) == ([], [], set())


def test_colab_cell_installs_the_package_and_enables_widgets_in_colab(monkeypatch):
    magics, widget_calls, _ = _run_colab_cell(monkeypatch, in_colab=True)
    assert magics == [("pip", INSTALL)] and widget_calls == ["enabled"]
    requirement = Requirement(INSTALL.split('"')[1])
    assert requirement.name == PROJECT["name"] and requirement.url == f"git+{REPOSITORY}"


def test_readme_launches_binder_and_colab_from_the_repository():
    readme = (ROOT / "README.md").read_text()
    assert f"https://mybinder.org/v2/gh/{GITHUB_PATH}/HEAD?urlpath=lab/tree/notebooks/00_start_here.ipynb" in readme
    for notebook in NOTEBOOKS:
        assert f"https://colab.research.google.com/github/{GITHUB_PATH}/blob/main/notebooks/{notebook.name}" in readme


def test_binder_environment_is_the_conda_one_without_the_editable_install():
    conda = yaml.safe_load((ROOT / "environment.yml").read_text())
    binder = yaml.safe_load((ROOT / ".binder" / "environment.yml").read_text())
    pip_section = next(entry for entry in conda["dependencies"] if isinstance(entry, dict))
    pip_section["pip"].remove("-e .")  # repo2docker builds the environment before the repository is copied
    assert binder == conda
    post_build = ROOT / ".binder" / "postBuild"
    assert os.access(post_build, os.X_OK) and "pip install --no-deps -e ." in post_build.read_text()
