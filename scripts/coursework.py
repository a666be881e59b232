"""Coursework with otter-grader: build student notebooks and autograders, grade submissions locally.

    python scripts/coursework.py build [--out dist] [NOTEBOOK ...]
    python scripts/coursework.py grade NAME SUBMISSION [SUBMISSION ...] [--out dist]

``build`` runs ``otter assign`` on every notebook in ``notebooks/`` that has an otter
``ASSIGNMENT CONFIG`` cell and writes, per notebook ``NAME``:
``OUT/NAME/student/`` (the notebook without solutions or hidden tests, and its public tests) and
``OUT/NAME/autograder/`` (the full notebook and ``NAME-autograder_*.zip`` with every test).

``grade`` runs ``otter run`` (no Docker, no server, no network) on each submitted notebook (a file,
or a folder searched for ``*.ipynb``) against ``OUT/NAME``'s autograder, keeps otter's
``results.json`` per submission under ``OUT/grades/NAME/``, prints one line per submission and
writes ``OUT/grades/NAME/scores.csv``. Exit status 0 when every submission was graded.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OTTER = [sys.executable, "-m", "otter"]


def has_assignment(notebook: Path) -> bool:
    cells = json.loads(notebook.read_text())["cells"]
    return any(c["cell_type"] == "raw" and "".join(c["source"]).lstrip().startswith("# ASSIGNMENT CONFIG") for c in cells)


def build(notebooks: list[Path], out: Path) -> dict[str, Path]:
    """``otter assign`` each notebook into ``out/NAME``; return NAME -> autograder zip."""
    zips = {}
    for notebook in notebooks:
        target = out / notebook.stem
        shutil.rmtree(target, ignore_errors=True)
        # --no-run-tests: grading the reference notebooks is done by the test suite instead
        subprocess.run([*OTTER, "assign", "--no-run-tests", "--no-pdfs", str(notebook), str(target)], check=True)
        zips[notebook.stem] = autograder_zip(out, notebook.stem)
    return zips


def autograder_zip(out: Path, name: str) -> Path:
    found = sorted((out / name / "autograder").glob(f"{name}-autograder_*.zip"))
    if not found:
        raise SystemExit(f"no autograder for {name!r} in {out / name}: run `make student` (build) first")
    return found[-1]


def grade_one(zip_path: Path, submission: Path, out: Path) -> dict[str, tuple[float, float]]:
    """Grade one notebook; return question -> (score, max_score)."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([*OTTER, "run", "--no-logo", "-a", str(zip_path), "-o", str(out), str(submission)],
                   check=True, capture_output=True, text=True)
    results = json.loads((out / "results.json").read_text())
    return {t["name"]: (float(t["score"]), float(t["max_score"])) for t in results["tests"] if "max_score" in t}


def grade(name: str, submissions: list[Path], out: Path) -> dict[str, dict[str, tuple[float, float]]]:
    zip_path = autograder_zip(out, name)
    files = [p for s in submissions for p in ([s] if s.is_file() else sorted(s.rglob("*.ipynb")))]
    if not files:
        raise SystemExit("no submissions (.ipynb) found in " + ", ".join(map(str, submissions)))
    report, rows = {}, []
    for number, path in enumerate(files):
        scores = grade_one(zip_path, path, out / "grades" / name / f"{number:03d}_{path.stem}")
        report[str(path)] = scores
        total, maximum = sum(s for s, _ in scores.values()), sum(m for _, m in scores.values())
        detail = ", ".join(f"{q} {s:g}/{m:g}" for q, (s, m) in scores.items())
        print(f"{path}: {total:g}/{maximum:g} ({detail})")
        rows.append({"submission": str(path), **{q: s for q, (s, _) in scores.items()}, "total": total, "max": maximum})
    with open(out / "grades" / name / "scores.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="student notebooks and autograders")
    b.add_argument("notebooks", nargs="*", type=Path)
    b.add_argument("--out", type=Path, default=ROOT / "dist")
    g = sub.add_parser("grade", help="grade submitted notebooks")
    g.add_argument("name", help="notebook name, e.g. 01_chain_rule_product")
    g.add_argument("submissions", nargs="+", type=Path)
    g.add_argument("--out", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    if args.command == "build":
        notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        for name, zip_path in build([n for n in notebooks if has_assignment(n)], args.out).items():
            print(f"{name}: student notebook in {args.out / name / 'student'}, autograder {zip_path}")
    else:
        grade(args.name, args.submissions, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
