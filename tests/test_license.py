"""The series is licensed (MIT for code, CC BY 4.0 for the notebooks' prose and figures) and says so everywhere it travels."""

import json
import tomllib
from importlib.metadata import distribution
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LICENSE_FILES = ("LICENSE", "LICENSE-CC-BY-4.0")
REPOSITORY = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
# the one line every notebook carries at the end of its title cell, and so its student version and HTML page
NOTICE = f"*[Gradient Stability Lab]({REPOSITORY}): text and figures CC BY 4.0, code MIT (see LICENSE).*"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_license_files_hold_both_licenses():
    mit, cc_by = ((ROOT / name).read_text() for name in LICENSE_FILES)
    assert "MIT License" in mit and "Permission is hereby granted, free of charge" in mit
    assert "CC BY 4.0" in mit and "LICENSE-CC-BY-4.0" in mit, "LICENSE must say what the CC BY part covers"
    assert "Attribution 4.0 International Public License" in cc_by
    for section in range(1, 9):
        assert f"Section {section} --" in cc_by, f"the CC BY 4.0 text is incomplete: no Section {section}"


def test_package_metadata_names_the_license_and_carries_the_files():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and tuple(project["license-files"]) == LICENSE_FILES
    installed = distribution("gradient-stability-lab")
    assert installed.metadata["License-Expression"] == "MIT"
    assert sorted(installed.metadata.get_all("License-File")) == sorted(LICENSE_FILES)
    carried = {Path(str(f)).name: f for f in installed.files if Path(str(f)).name in LICENSE_FILES}
    assert set(carried) == set(LICENSE_FILES), "the installed package must carry both license files"
    for name, packaged in carried.items():
        assert packaged.read_text() == (ROOT / name).read_text()


def test_readme_has_a_license_section():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## License", 1)[1]
    assert "MIT" in section and "CC BY 4.0" in section and "LICENSE-CC-BY-4.0" in section


def test_every_notebook_carries_the_notice_in_its_title_cell():
    for path in NOTEBOOKS:
        first = json.loads(path.read_text())["cells"][0]
        assert first["cell_type"] == "markdown" and "".join(first["source"]).rstrip().endswith(NOTICE), path.name
