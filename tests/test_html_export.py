"""`make html` (scripts/export_html.py): every notebook becomes a page that holds every figure it made."""

import re
import sys
from pathlib import Path

import pytest

from helpers import widgets
from tests.test_license import NOTICE

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import export_html  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EMBEDDED_PNG = re.compile(r'<img[^>]*src="data:image/png;base64,')


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_export_page_embeds_every_figure(notebook, tmp_path):
    page, executed = export_html.export(notebook, tmp_path)
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
