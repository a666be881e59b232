"""Coursework with otter-grader: build student notebooks and autograders, grade submissions locally.

    python scripts/coursework.py build [--out dist] [NOTEBOOK ...]
    python scripts/coursework.py grade NAME SUBMISSION [SUBMISSION ...] [--out dist]

``build`` runs ``otter assign`` on every notebook in ``notebooks/`` that has an otter
``ASSIGNMENT CONFIG`` cell and writes, per notebook ``NAME``:
``OUT/NAME/student/`` (the notebook without solutions or hidden tests, and its public tests) and
``OUT/NAME/autograder/`` (the full notebook and ``NAME-autograder_*.zip`` with every test).

``grade`` runs ``otter run`` (no Docker, no server, no network) on each submitted notebook (a file,
or a folder searched for ``*.ipynb``; ``--jobs N`` grades N at once) against ``OUT/NAME``'s autograder, keeps otter's
``results.json`` per submission under ``OUT/grades/NAME/``, prints one line per submission and
writes ``OUT/grades/NAME/scores.csv``. Exit status 0 when every submission was graded.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OTTER = [sys.executable, "-m", "otter"]


def has_assignment(notebook: Path) -> bool:
    cells = json.loads(notebook.read_text())["cells"]
    return any(c["cell_type"] == "raw" and "".join(c["source"]).lstrip().startswith("# ASSIGNMENT CONFIG") for c in cells)


def build(notebooks: list[Path], out: Path, *, jobs: int = 2) -> dict[str, Path]:
    """``otter assign`` each notebook into ``out/NAME`` (``jobs`` at a time); return NAME -> autograder zip."""

    def assign(notebook: Path) -> Path:
        target = out / notebook.stem
        shutil.rmtree(target, ignore_errors=True)
        # --no-run-tests: grading the reference notebooks is done by the test suite instead
        done = subprocess.run([*OTTER, "assign", "--no-run-tests", "--no-pdfs", str(notebook), str(target)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"otter assign failed on {notebook}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return autograder_zip(out, notebook.stem)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return dict(zip((n.stem for n in notebooks), pool.map(assign, notebooks)))


def autograder_zip(out: Path, name: str) -> Path:
    found = sorted((out / name / "autograder").glob(f"{name}-autograder_*.zip"))
    if not found:
        raise SystemExit(f"no autograder for {name!r} in {out / name}: run `make student` (build) first")
    return found[-1]


def grade_one(
    zip_path: Path, submission: Path, out: Path, *, debug: bool = False, single_thread: bool = False
) -> dict[str, tuple[float, float]]:
    """Grade one notebook with ``otter run``; return question -> (score, max_score).

    ``out/results.json`` keeps otter's full report (each failed check's message). ``debug``: fail
    if any cell of the submission raises (otter ignores such errors by default). ``single_thread``:
    limit the kernel's math libraries to one thread, for grading several submissions at once.
    """
    out.mkdir(parents=True, exist_ok=True)
    command = [*OTTER, "run", "--no-logo", *(["--debug"] if debug else []), "-a", str(zip_path), "-o", str(out), str(submission)]
    env = {**os.environ, **({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} if single_thread else {})}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"otter run failed on {submission}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    results = json.loads((out / "results.json").read_text())
    return {t["name"]: (float(t["score"]), float(t["max_score"])) for t in results["tests"] if "max_score" in t}


def grade(
    name: str, submissions: list[Path], out: Path, *, jobs: int = 1, debug: bool = False
) -> dict[str, dict[str, tuple[float, float]]]:
    """Grade every submission against ``out/NAME``'s autograder, ``jobs`` at a time; return path -> scores."""
    zip_path = autograder_zip(out, name)
    files = [p for s in submissions for p in ([s] if s.is_file() else sorted(s.rglob("*.ipynb")))]
    if not files:
        raise SystemExit("no submissions (.ipynb) found in " + ", ".join(map(str, submissions)))
    folders = [out / "grades" / name / f"{number:03d}_{path.stem}" for number, path in enumerate(files)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        all_scores = list(pool.map(lambda p, o: grade_one(zip_path, p, o, debug=debug, single_thread=jobs > 1), files, folders))
    report, rows = {}, []
    for path, scores in zip(files, all_scores):
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
    g.add_argument("--jobs", type=int, default=1, help="submissions graded at once (one thread each)")
    args = parser.parse_args(argv)
    if args.command == "build":
        notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        for name, zip_path in build([n for n in notebooks if has_assignment(n)], args.out).items():
            print(f"{name}: student notebook in {args.out / name / 'student'}, autograder {zip_path}")
    else:
        grade(args.name, args.submissions, args.out, jobs=max(1, args.jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
