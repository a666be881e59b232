"""Bad submissions cost themselves, never the batch: a tiny assignment graded with every bad case beside good ones.

The assignment is built here (one question, no torch) so that each good submission grades in a few seconds;
the grading code under test is the same ``scripts/coursework.py`` that grades the series' notebooks.
"""

import csv
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "coursework.py"
sys.path.insert(0, str(SCRIPT.parent))
import coursework  # noqa: E402

NAME = "tiny_assignment"
TIMEOUT = 120  # seconds: a good submission of this assignment grades in ~8 s on 2 quiet cores, ~60 s on very busy ones


def _master() -> nbformat.NotebookNode:
    config = "# ASSIGNMENT CONFIG\nname: tiny_assignment\ninit_cell: true\ncheck_all_cell: false\nexport_cell: false\n" \
             "solutions_pdf: false\nrun_tests: false\ntests:\n  ok_format: false\n  files: true"
    test = '""" # BEGIN TEST CONFIG\nhidden: true\n""" # END TEST CONFIG\ndef test_double(double):\n' \
           '    assert double(21) == 42 and double(-1.5) == -3.0, "double(x) must return 2 * x"\n\ntest_double(double)'
    return new_notebook(cells=[
        new_raw_cell(config), new_markdown_cell("# A tiny assignment"), new_code_cell("import math"),
        new_raw_cell("# BEGIN QUESTION\nname: q_double\npoints: 2"), new_markdown_cell("Write `double(x)`."),
        new_raw_cell("# BEGIN SOLUTION"), new_code_cell("def double(x):\n    return 2 * x  # SOLUTION"),
        new_raw_cell("# END SOLUTION"), new_raw_cell("# BEGIN TESTS"), new_code_cell(test), new_raw_cell("# END TESTS"),
        new_raw_cell("# END QUESTION"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading")
    master = root / f"{NAME}.ipynb"
    nbformat.write(_master(), master)
    subprocess.run([sys.executable, str(SCRIPT), "build", "--out", str(root / "dist"), str(master)], check=True,
                   capture_output=True)
    return root / "dist"


def _submission(dist: Path, folder: Path, name: str, edit=None, raw: str | None = None) -> Path:
    """The reference (autograder) notebook, changed by ``edit(notebook)``, or ``raw`` text, saved as ``name``."""
    path = folder / f"{name}.ipynb"
    if raw is not None:
        path.write_text(raw)
        return path
    notebook = nbformat.read(dist / NAME / "autograder" / f"{NAME}.ipynb", as_version=4)
    if edit:
        notebook = edit(notebook) or notebook
    nbformat.write(notebook, path)
    return path


@pytest.fixture(scope="module")
def hang_timeout(built, tmp_path_factory) -> float:
    """The time limit for the batch with a hanging submission (which always costs the whole limit): four times what
    one good submission took just now on this machine, so the test is quick on a quiet machine and safe on a busy one."""
    folder = tmp_path_factory.mktemp("calibrate")
    _submission(built, folder, "a_good")
    start = time.perf_counter()
    report = coursework.grade(NAME, [folder], built, timeout=TIMEOUT)
    assert [graded.scores for graded in report.values()] == [{"q_double": (2.0, 2.0)}]
    return max(30.0, 4 * (time.perf_counter() - start))


def _append(code):
    def edit(notebook):
        notebook.cells.insert(len(notebook.cells) - 1, new_code_cell(code))
    return edit


def test_a_batch_with_every_bad_case_still_grades_the_good_submissions_exactly(built, hang_timeout, tmp_path):
    zip_path = coursework.autograder_zip(built, NAME)
    zip_before = coursework._sha256(zip_path)
    folder = tmp_path / "submissions"
    folder.mkdir()
    whole = (built / NAME / "autograder" / f"{NAME}.ipynb").read_text()

    def wrong(notebook):
        for cell in notebook.cells:
            cell.source = cell.source.replace("return 2 * x", "return x + 2")

    def fresh_without_metadata(notebook):  # pasted into a new notebook: no otter metadata, no kernelspec
        return new_notebook(cells=notebook.cells)

    def other_kernel(notebook):
        notebook.metadata["kernelspec"] = {"name": "conda-env-course-py", "display_name": "course", "language": "python"}

    cases = {  # name -> (submission, expected: score or a word of the error)
        "a_good": (_submission(built, folder, "a_good"), 2.0),
        "b_hangs": (_submission(built, folder, "b_hangs", _append("while True:\n    pass")), "timed out"),
        "c_truncated": (_submission(built, folder, "c_truncated", raw=whole[: len(whole) // 2]), "not a readable notebook"),
        "d_empty": (_submission(built, folder, "d_empty", raw=nbformat.writes(new_notebook())), "no code cells"),
        "e_pasted": (_submission(built, folder, "e_pasted", fresh_without_metadata), 2.0),
        "f_other_kernel": (_submission(built, folder, "f_other_kernel", other_kernel), 2.0),
        "g_wrong": (_submission(built, folder, "g_wrong", wrong), 0.0),
        "h_deletes_its_folder": (_submission(built, folder, "h_deletes_its_folder",
                                             _append("import os, shutil\nshutil.rmtree(os.getcwd(), ignore_errors=True)")),
                                 "no question was graded"),
        "i_kills_the_kernel": (_submission(built, folder, "i_kills_the_kernel", _append("import os\nos._exit(3)")),
                               "otter run failed"),
        "z_good": (_submission(built, folder, "z_good"), 2.0),
    }
    report = coursework.grade(NAME, [folder], built, jobs=2, timeout=hang_timeout)
    for name, (path, expected) in cases.items():
        graded = report[str(path)]
        if isinstance(expected, float):
            assert not graded.error and graded.scores == {"q_double": (expected, 2.0)}, (name, graded)
        else:
            assert expected in graded.error and not graded.scores, (name, graded)
    with open(built / "grades" / NAME / "scores.csv") as handle:
        rows = {Path(row["submission"]).stem: row for row in csv.DictReader(handle)}
    assert set(rows) == set(cases)
    assert rows["a_good"]["q_double"] == "2.0" and rows["a_good"]["error"] == ""
    assert rows["c_truncated"]["error"].startswith("not a readable notebook") and rows["c_truncated"]["q_double"] == ""
    assert coursework._sha256(zip_path) == zip_before, "no submission of this batch may change the autograder"


def test_a_submission_that_rewrites_the_autograder_zip_stops_the_batch_loudly(built, tmp_path):
    zip_path = coursework.autograder_zip(built, NAME)
    original = zip_path.read_bytes()
    folder = tmp_path / "submissions"
    folder.mkdir()
    tamper = f"open({str(zip_path)!r}, 'ab').write(b'full marks please')"
    _submission(built, folder, "a_tampers", _append(tamper))
    try:
        with pytest.raises(RuntimeError, match="autograder zip .* changed"):
            coursework.grade(NAME, [folder], built, timeout=TIMEOUT)
        rows = list(csv.DictReader(open(built / "grades" / NAME / "scores.csv")))
        assert [Path(r["submission"]).stem for r in rows] == ["a_tampers"], "what was graded is still written"
    finally:
        zip_path.write_bytes(original)


def test_first_submission_without_results_does_not_break_scores_csv(built, tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    broken = _submission(built, folder, "a_broken", raw="{not json")
    good = _submission(built, folder, "b_good")
    report = coursework.grade(NAME, [folder], built, timeout=TIMEOUT)
    assert report[str(broken)].error and report[str(good)].scores == {"q_double": (2.0, 2.0)}
    header = (built / "grades" / NAME / "scores.csv").read_text().splitlines()[0]
    assert header == "submission,q_double,total,max,error"


def test_grade_command_exits_2_when_a_submission_could_not_be_graded(built, tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    _submission(built, folder, "a_broken", raw="")
    done = subprocess.run([sys.executable, str(SCRIPT), "grade", NAME, str(folder), "--out", str(built),
                           "--timeout", str(TIMEOUT)], capture_output=True, text=True)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "NOT GRADED: not a readable notebook" in done.stdout and "1 of 1 submissions could not be graded" in done.stdout


def test_the_autograder_pins_torch_as_the_makefile_does_and_declares_every_dependency():
    makefile = (ROOT / "Makefile").read_text()
    assert f"TORCH := {coursework.TORCH_PIN}\n" in makefile
    requirements = coursework.autograder_requirements()
    assert requirements[0] == coursework.TORCH_PIN and sum(r.startswith("torch") for r in requirements) == 1
    assert {"numpy", "matplotlib", "mnist1d", "threadpoolctl"} <= {r.split(">")[0].split("=")[0] for r in requirements}
