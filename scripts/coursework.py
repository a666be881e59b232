"""Coursework with otter-grader: build student notebooks and autograders, grade submissions locally.

    python scripts/coursework.py build [--out dist] [NOTEBOOK ...]
    python scripts/coursework.py grade NAME SUBMISSION [SUBMISSION ...] [--out dist] [--jobs N] [--timeout S]
    python scripts/coursework.py check-env NAME [--out dist]

``build`` runs ``otter assign`` on every notebook in ``notebooks/`` that has an otter
``ASSIGNMENT CONFIG`` cell and writes, per notebook ``NAME``:
``OUT/NAME/student/`` (the notebook without solutions or hidden tests, and its public tests) and
``OUT/NAME/autograder/`` (the full notebook and ``NAME-autograder_*.zip`` with every test).

``grade`` runs ``otter run`` (no Docker, no server, no network) on each submitted notebook (a file,
or a folder searched for ``*.ipynb``; ``--jobs N`` grades N at once) against ``OUT/NAME``'s autograder, keeps otter's
``results.json`` per submission under ``OUT/grades/NAME/``, prints one line per submission and
writes ``OUT/grades/NAME/scores.csv``. Each submission runs in its own temporary folder, with one thread per
math library and a time limit (``--timeout``); one that cannot be graded (unreadable, hangs, crashes otter,
deletes its files) gets a one-line reason in the ``error`` column and costs nothing to the others. Exit
status 0 when every submission was graded, 2 when some could not be; a changed autograder zip stops the batch.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from helpers.threads import THREAD_VARS  # noqa: E402

OTTER = [sys.executable, "-m", "otter"]


def has_assignment(notebook: Path) -> bool:
    cells = json.loads(notebook.read_text())["cells"]
    return any(c["cell_type"] == "raw" and "".join(c["source"]).lstrip().startswith("# ASSIGNMENT CONFIG") for c in cells)


# The autograder declares what graded kernels need (Gradescope and `otter grade` build their environment from it):
# Python 3.11, this package's dependencies with torch pinned as the Makefile pins it, and `helpers/` itself,
# shipped inside the zip (and beside the student notebook) so that no install of this repository is needed.
PYTHON_VERSION = "3.11"
TORCH_PIN = "torch==2.13.0"  # the Makefile's TORCH


def autograder_requirements() -> list[str]:
    """The requirements.txt lines of every autograder: ``pyproject.toml``'s dependencies, torch pinned."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [TORCH_PIN] + [d for d in dependencies if Requirement(d).name != "torch"]  # otter adds its own pin


def _staged(notebook: Path, folder: Path) -> Path:
    """Copy ``notebook`` into ``folder`` with ``helpers/`` and a requirements.txt beside it, and its
    ASSIGNMENT CONFIG extended to declare them (``python_version``, ``requirements``, ``files``)."""
    shutil.copytree(ROOT / "helpers", folder / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "requirements.txt").write_text("\n".join(autograder_requirements()) + "\n")
    master = json.loads(notebook.read_text())
    for cell in master["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "raw" and source.lstrip().startswith("# ASSIGNMENT CONFIG"):
            config = yaml.safe_load(source) or {}
            config.update(python_version=PYTHON_VERSION, requirements="requirements.txt",
                          files=[*config.get("files", []), "helpers"])
            cell["source"] = "# ASSIGNMENT CONFIG\n" + yaml.safe_dump(config, sort_keys=False)
    staged = folder / notebook.name
    staged.write_text(json.dumps(master, indent=1))
    return staged


def build(notebooks: list[Path], out: Path, *, jobs: int = 2) -> dict[str, Path]:
    """``otter assign`` each notebook into ``out/NAME`` (``jobs`` at a time); return NAME -> autograder zip."""

    def assign(notebook: Path) -> Path:
        target = out / notebook.stem
        shutil.rmtree(target, ignore_errors=True)
        with tempfile.TemporaryDirectory(prefix="assign-") as staging:
            staged = _staged(notebook, Path(staging))
            # --no-run-tests: grading the reference notebooks is done by the test suite instead
            done = subprocess.run([*OTTER, "assign", "--no-run-tests", "--no-pdfs", str(staged), str(target.resolve())],
                                  capture_output=True, text=True, cwd=staging)
        if done.returncode != 0:
            raise RuntimeError(f"otter assign failed on {notebook}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return autograder_zip(out, notebook.stem)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return dict(zip((n.stem for n in notebooks), pool.map(assign, notebooks)))


def fill_work_folder(out: Path, names: list[str], work: Path) -> list[Path]:
    """Put the learner's copies of the student notebooks (``out/NAME/student``) into one folder ``work``.

    ``work`` gets every student notebook (exercises unsolved, no grading markup) and one ``tests/`` folder
    with every notebook's public checks (question names are unique across the series), so ``grader.check``
    works in each. A notebook already in ``work`` is never overwritten: it holds the learner's answers.
    Returns the notebooks copied this time.
    """
    (work / "tests").mkdir(parents=True, exist_ok=True)
    copied, owner = [], {}
    for name in names:
        student = out / name / "student"
        for test in (student / "tests").glob("*.py"):
            if owner.setdefault(test.name, name) != name:
                raise ValueError(f"question {test.stem} is in both {owner[test.name]} and {name}: rename one")
            shutil.copy(test, work / "tests" / test.name)
        if not (work / f"{name}.ipynb").exists():
            shutil.copy(student / f"{name}.ipynb", work / f"{name}.ipynb")
            copied.append(work / f"{name}.ipynb")
    return copied


def autograder_zip(out: Path, name: str) -> Path:
    found = sorted((out / name / "autograder").glob(f"{name}-autograder_*.zip"))
    if not found:
        raise SystemExit(f"no autograder for {name!r} in {out / name}: run `make student` (build) first")
    return found[-1]


# Grading runs code that students wrote: every submission gets a time limit, its own temporary folder and
# one thread per math library, and whatever it does costs that submission only (see README, "For instructors").
DEFAULT_TIMEOUT = 600  # seconds per submission; the slowest reference notebook takes well under a minute
SINGLE_THREAD = dict.fromkeys(THREAD_VARS, "1")


@dataclass
class Graded:
    """One submission's result: question -> (score, max_score), or the reason it could not be graded."""

    scores: dict[str, tuple[float, float]] = field(default_factory=dict)
    error: str = ""


def _readable_copy(submission: Path, folder: Path, assignment: str) -> Path:
    """Copy ``submission`` into ``folder`` as a notebook otter can run; ``ValueError`` says why it cannot be.

    The kernel is set to this environment's ``python3`` (a notebook saved under another kernel name is
    graded like any other), and a notebook without otter's metadata (pasted into a fresh notebook) is
    taken as a submission for ``assignment``; one that names another assignment is still refused by otter.
    """
    try:
        notebook = nbformat.read(submission, as_version=4)
    except Exception as exc:  # truncated JSON, not a notebook, unreadable file
        raise ValueError(f"not a readable notebook ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
    if not any(cell.cell_type == "code" and cell.source.strip() for cell in notebook.cells):
        raise ValueError("the notebook has no code cells")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata.setdefault("otter", {}).setdefault("assignment_name", assignment)
    copy = folder / submission.name
    nbformat.write(notebook, copy)
    return copy


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def grade_one(
    zip_path: Path, submission: Path, out: Path, *, assignment: str, timeout: float = DEFAULT_TIMEOUT, debug: bool = False,
    python: str = sys.executable,
) -> Graded:
    """Grade one notebook with ``otter run`` in a private temporary folder; never raises for a bad submission.

    ``out/results.json`` keeps otter's full report (each failed check's message). ``debug``: a cell of the
    submission that raises is an error (otter ignores such errors by default). The kernel gets one thread
    per math library; the whole process group is killed after ``timeout`` seconds. ``python``: the
    interpreter whose otter and kernel grade (another environment's, to check what the autograder declares).
    """
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="grade-") as private:
        private = Path(private)
        for folder in ("submission", "tmp", "results"):
            (private / folder).mkdir()
        try:
            notebook = _readable_copy(submission, private / "submission", assignment)
        except ValueError as exc:
            return Graded(error=str(exc))
        zip_copy = private / zip_path.name
        shutil.copy(zip_path, zip_copy)
        command = [python, "-m", "otter", "run", "--no-logo", *(["--debug"] if debug else []), "-a", str(zip_copy),
                   "-o", str(private / "results"), str(notebook)]
        env = {**os.environ, **SINGLE_THREAD, "TMPDIR": str(private / "tmp")}
        process = subprocess.Popen(command, cwd=private / "submission", env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # otter and the kernel it started
            output = process.communicate()[0]
            (out / "otter.log").write_text(output)
            return Graded(error=f"timed out after {timeout:g} s")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # a kernel or child the submission left running
        results_file = private / "results" / "results.json"
        if results_file.is_file():
            shutil.copy(results_file, out / "results.json")
        (out / "otter.log").write_text(output)
        if process.returncode != 0 or not results_file.is_file():
            last = [line for line in output.splitlines() if line.strip()][-1:] or ["no output"]
            return Graded(error=f"otter run failed (exit {process.returncode}): {last[0][:300]}")
    results = json.loads((out / "results.json").read_text())
    scores = {t["name"]: (float(t["score"]), float(t["max_score"])) for t in results["tests"] if "max_score" in t}
    if not scores:
        return Graded(error="no question was graded (did the notebook delete or move its files?)")
    return Graded(scores=scores)


def grade(
    name: str, submissions: list[Path], out: Path, *, jobs: int = 1, timeout: float = DEFAULT_TIMEOUT, debug: bool = False
) -> dict[str, Graded]:
    """Grade every submission against ``out/NAME``'s autograder, ``jobs`` at a time; return path -> ``Graded``.

    Every submission is graded or gets a one-line reason (``error`` in ``scores.csv``), whatever the others do.
    The autograder zip is checked unchanged after every submission: if one changed it, grading stops loudly
    (``RuntimeError``) after writing what was graded so far.
    """
    zip_path = autograder_zip(out, name)
    expected_hash = _sha256(zip_path)
    files = [p for s in submissions for p in ([s] if s.is_file() else sorted(s.rglob("*.ipynb")))]
    if not files:
        raise SystemExit("no submissions (.ipynb) found in " + ", ".join(map(str, submissions)))
    folders = [out / "grades" / name / f"{number:03d}_{path.stem}" for number, path in enumerate(files)]
    report: dict[str, Graded] = {}
    tampered = None
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(grade_one, zip_path, path, folder, assignment=name, timeout=timeout, debug=debug)
                   for path, folder in zip(files, folders)]
        for path, future in zip(files, futures):
            report[str(path)] = future.result()
            if tampered is None and _sha256(zip_path) != expected_hash:
                tampered = path
                for other in futures:
                    other.cancel()
                break
    _write_scores(report, out / "grades" / name / "scores.csv")
    if tampered is not None:
        raise RuntimeError(f"the autograder zip {zip_path} changed while {tampered} was graded (or before): grading stopped; "
                           "rebuild it with `make student` and grade the rest again")
    return report


def _write_scores(report: dict[str, Graded], csv_path: Path) -> None:
    """Print one line per submission and write ``scores.csv`` (one column per question seen, then total, max, error)."""
    questions = list(dict.fromkeys(q for graded in report.values() for q in graded.scores))
    rows = []
    for path, graded in report.items():
        total, maximum = sum(s for s, _ in graded.scores.values()), sum(m for _, m in graded.scores.values())
        detail = ", ".join(f"{q} {s:g}/{m:g}" for q, (s, m) in graded.scores.items())
        print(f"{path}: " + (f"{total:g}/{maximum:g} ({detail})" if not graded.error else f"NOT GRADED: {graded.error}"))
        rows.append({"submission": path, **{q: s for q, (s, _) in graded.scores.items()}, "total": total, "max": maximum,
                     "error": graded.error})
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["submission", *questions, "total", "max", "error"])
        writer.writeheader()
        writer.writerows(rows)


def check_environment(name: str, out: Path) -> Graded:
    """Grade the reference notebook in a fresh venv built only from what ``out/NAME``'s autograder zip declares.

    Reads the pip requirements of the zip's ``environment.yml`` (what Gradescope and ``otter grade`` install),
    installs them into a new virtual environment of this Python (which must match the declared version),
    and grades ``out/NAME/autograder/NAME.ipynb`` with that environment's otter and kernel.
    """
    zip_path = autograder_zip(out, name)
    with zipfile.ZipFile(zip_path) as archive:
        environment = yaml.safe_load(archive.read("environment.yml"))
    declared = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python="))
    if declared != f"python={sys.version_info.major}.{sys.version_info.minor}":
        raise SystemExit(f"the autograder declares {declared}; run this with that Python")
    requirements = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    with tempfile.TemporaryDirectory(prefix="autograder-env-") as venv:
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        python = str(Path(venv) / "bin" / "python")
        # torch first, alone: a range asked for by another package can then not pull a CUDA build
        subprocess.run([python, "-m", "pip", "install", "--quiet", TORCH_PIN], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", *requirements], check=True)
        return grade_one(zip_path, out / name / "autograder" / f"{name}.ipynb", out / "env-check" / name,
                         assignment=name, python=python)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="student notebooks and autograders")
    b.add_argument("notebooks", nargs="*", type=Path)
    b.add_argument("--out", type=Path, default=ROOT / "dist")
    b.add_argument("--work", type=Path, help="also copy the student notebooks (never overwriting one) into this folder")
    g = sub.add_parser("grade", help="grade submitted notebooks")
    g.add_argument("name", help="notebook name, e.g. 01_chain_rule_product")
    g.add_argument("submissions", nargs="+", type=Path)
    g.add_argument("--out", type=Path, default=ROOT / "dist")
    g.add_argument("--jobs", type=int, default=1, help="submissions graded at once (one thread each)")
    g.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per submission (default %(default)s)")
    c = sub.add_parser("check-env", help="grade the reference in a fresh environment built from the autograder zip")
    c.add_argument("name", help="notebook name, e.g. 03_gradient_checking")
    c.add_argument("--out", type=Path, default=ROOT / "dist")
    args = parser.parse_args(argv)
    if args.command == "build":
        notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        built = build([n for n in notebooks if has_assignment(n)], args.out)
        for name, zip_path in built.items():
            print(f"{name}: student notebook in {args.out / name / 'student'}, autograder {zip_path}")
        if args.work:
            for path in fill_work_folder(args.out, list(built), args.work):
                print(f"new in {args.work}: {path.name}")
    elif args.command == "check-env":
        graded = check_environment(args.name, args.out)
        print(f"{args.name} graded in a fresh environment from the autograder's declared requirements: "
              + (graded.error or ", ".join(f"{q} {s:g}/{m:g}" for q, (s, m) in graded.scores.items())))
        return 0 if not graded.error and all(s == m for s, m in graded.scores.values()) else 1
    else:
        report = grade(args.name, args.submissions, args.out, jobs=max(1, args.jobs), timeout=args.timeout)
        failed = sum(bool(graded.error) for graded in report.values())
        if failed:
            print(f"{failed} of {len(report)} submissions could not be graded: see the error column of scores.csv")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
