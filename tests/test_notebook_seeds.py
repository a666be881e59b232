"""Evidence that holds for any seed: every notebook is parameterised by ``SEED`` and its asserts pass for other seeds.

Each notebook has one code cell tagged ``parameters`` (papermill's convention) defining ``SEED = 0``;
every random draw flows from it. Every notebook runs once with each seed in ``GSL_SEEDS`` (default ``1,2``; set
e.g. ``GSL_SEEDS=1,2,3,4,5`` for a wider sweep): the browser test runs the notebooks it drives with the first seed
(``tests/test_browser.py``), ``test_notebook_holds_for_other_seeds`` runs the rest with papermill, which injects
``SEED = s`` after that cell. Any failing assert fails the test with the notebook's traceback.
``SEED = 0`` itself runs as the reference solution in the grading test (``tests/test_coursework.py``).
Each notebook's first papermill run is also exported to HTML and checked (``tests/test_html_export.py``), so that
no notebook is executed once more for the export.
"""

import json
import re

import nbformat
import papermill
import pytest

from tests.conftest import NOTEBOOKS, SEEDS
from tests.test_browser import SLIDER_TO_MOVE
from tests.test_html_export import check_export

# a seed written as a number literal bypasses SEED (seed_everything(3), default_rng(7), manual_seed(0), ...)
LITERAL_SEED = re.compile(r"\b(seed_everything|default_rng|manual_seed|section_rng|section_generator|section_seed)\(\s*\d")


def _code_cells_outside_tests(notebook: dict) -> list[tuple[int, dict]]:
    """Code cells with their index, leaving out otter's test cells (tests may pin their own inputs)."""
    cells, in_tests = [], False
    for index, cell in enumerate(notebook["cells"]):
        source = "".join(cell["source"]).strip()
        if cell["cell_type"] == "raw" and source in ("# BEGIN TESTS", "# END TESTS"):
            in_tests = source == "# BEGIN TESTS"
        elif cell["cell_type"] == "code" and not in_tests:
            cells.append((index, cell))
    return cells


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_defines_seed_and_everything_flows_from_it(path):
    notebook = json.loads(path.read_text())
    code = _code_cells_outside_tests(notebook)
    tagged = [i for i, c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one code cell must be tagged `parameters`, found {len(tagged)}"
    parameters = "".join(notebook["cells"][tagged[0]]["source"])
    assert re.search(r"^SEED = 0$", parameters, re.M), f"{path.name}: the parameters cell must define SEED = 0"
    assert "seed_everything(" not in parameters, "papermill injects after the parameters cell: seed in a later cell"
    later = "".join("".join(c["source"]) for i, c in code if i > tagged[0])
    assert "SEED" in later, f"{path.name}: no cell after the parameters cell uses SEED"
    for index, cell in code:
        match = LITERAL_SEED.search("".join(cell["source"]))
        assert not match, f"{path.name} cell {index}: {match.group(0)}… is seeded by a literal; derive it from SEED"


def papermill_seeds(path) -> list[int]:
    """The seeds papermill runs ``path`` with: the browser test runs the first for the notebooks it drives
    (all of them here when ``GSL_SEEDS`` names one seed: every notebook needs one run for the HTML export)."""
    return (SEEDS[1:] or SEEDS) if path.stem in SLIDER_TO_MOVE else SEEDS


RUNS = [(path, seed) for path in NOTEBOOKS for seed in papermill_seeds(path)]


@pytest.mark.parametrize(("path", "seed"), RUNS, ids=[f"{path.stem}-{seed}" for path, seed in RUNS])
def test_notebook_holds_for_other_seeds(path, seed, tmp_path):
    out = tmp_path / path.name
    papermill.execute_notebook(str(path), str(out), parameters={"SEED": seed}, cwd=str(path.parent),
                               kernel_name="python3", progress_bar=False)
    if seed == papermill_seeds(path)[0]:  # this run is also the HTML export's
        check_export(path, nbformat.read(out, as_version=4), tmp_path / "html")
