"""Export the executed series as static HTML, for reading without running or for hosting.

Usage: ``make html`` (or ``python scripts/export_html.py [--output-dir DIR] [notebook ...]``), default
``dist/html/``. Each notebook runs top to bottom in a fresh kernel; every figure is embedded in the page.
Widget state is not stored, so each explorer shows its static figure and note (``helpers.widgets.STATIC_NOTE``)
instead of a widget view whose JavaScript would have to come from the internet.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent


def export(notebook: Path, output_dir: Path, executed: nbformat.NotebookNode | None = None
           ) -> tuple[Path, nbformat.NotebookNode]:
    """Write ``output_dir/<name>.html`` from ``executed`` (default: ``notebook`` executed here, in a fresh kernel);
    return the page's path and the executed notebook."""
    if executed is None:
        executed = nbformat.read(notebook, as_version=4)
        NotebookClient(executed, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(notebook.parent)}}).execute()
    executed = copy.deepcopy(executed)
    executed.metadata.pop("widgets", None)  # no widget state: explorers fall back to their static figure
    html, _ = HTMLExporter(template_name="lab").from_notebook_node(executed)
    output_dir.mkdir(parents=True, exist_ok=True)
    page = output_dir / f"{notebook.stem}.html"
    page.write_text(html, encoding="utf-8")
    return page, executed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist" / "html")
    args = parser.parse_args(argv)
    for notebook in args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        page, _ = export(notebook, args.output_dir)
        print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
