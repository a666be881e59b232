"""`make html` (scripts/export_html.py): every notebook becomes a page that holds every figure it made.

Each series notebook's page is checked by ``check_export`` on the run with the first of the suite's seeds, inside
``tests/test_notebook_seeds.py`` (so no notebook is executed again for the export). Here: the exporter's own
execution path, on a small notebook made for the test.
"""

import re
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers import widgets
from tests.test_license import NOTICE

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import export_html  # noqa: E402

EMBEDDED_PNG = re.compile(r'<img[^>]*src="data:image/png;base64,')


def check_export(notebook: Path, executed: nbformat.NotebookNode, output_dir: Path) -> None:
    """Export the executed series notebook; the page embeds every figure, each explorer as its static figure."""
    page, executed = export_html.export(notebook, output_dir, executed)
    outputs = [output for cell in executed.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    figures = sum("image/png" in output.get("data", {}) for output in outputs)
    explorers = sum("Explorer (interactive" in output.get("data", {}).get("text/plain", "") for output in outputs)
    html = page.read_text(encoding="utf-8")
    assert len(EMBEDDED_PNG.findall(html)) == figures
    assert html.count(widgets.STATIC_NOTE) == explorers  # each explorer: its static figure and the note
    assert "application/vnd.jupyter.widget-view+json" not in html  # no widget view that needs the internet
    assert "text and figures CC BY 4.0, code MIT" in html and NOTICE.split("]")[0].lstrip("*[") in html
    assert explorers == len(re.findall(r"widgets\.\w+Explorer\(", notebook.read_text()))  # every explorer shown
    if notebook.stem != "00_start_here":
        assert figures >= 2


def test_export_executes_a_notebook_and_embeds_its_figures_and_explorers(tmp_path):
    notebook = tmp_path / "tiny.ipynb"
    nbformat.write(new_notebook(cells=[
        new_markdown_cell("# A tiny notebook"),
        new_code_cell("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3]);\nplt.show()"),
        new_code_cell("from helpers import widgets\nwidgets.GradCheckExplorer()"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}), notebook)
    page, executed = export_html.export(notebook, tmp_path / "html")
    html = page.read_text(encoding="utf-8")
    assert page == tmp_path / "html" / "tiny.html"
    assert len(EMBEDDED_PNG.findall(html)) == 2  # the plot and the explorer's static figure
    assert html.count(widgets.STATIC_NOTE) == 1 and "application/vnd.jupyter.widget-view+json" not in html
    assert all(output.output_type != "error" for cell in executed.cells[1:] for output in cell.outputs)
