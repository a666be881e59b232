# Two commands for a fresh clone (see README): `make lab` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TORCH := torch==2.13.0
LAB_ARGS ?=

.PHONY: setup lab test lint bench student grade html clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: make PYTHON=/path/to/python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)   # CPU build, pinned first so nothing pulls CUDA
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	-@[ -d .git ] && $(BIN)/pre-commit install >/dev/null && echo "pre-commit hooks installed (nbstripout, ruff)"
	touch $(STAMP)

setup: $(STAMP)

lab: setup
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(LAB_ARGS) notebooks/00_start_here.ipynb

lint: setup
	$(BIN)/ruff check helpers tests notebooks scripts

test: lint
	$(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

bench: setup
	$(BIN)/python scripts/benchmark.py

html: setup      # executed series as static HTML in dist/html/ (every figure embedded; explorers as static figures)
	$(BIN)/python scripts/export_html.py --output-dir dist/html

student: setup   # dist/NAME/student (no solutions, public tests) and dist/NAME/autograder (all tests)
	$(BIN)/python scripts/coursework.py build

grade: setup     # make grade NOTEBOOK=01_chain_rule_product SUBMISSIONS=path/to/submissions
	$(BIN)/python scripts/coursework.py grade $(NOTEBOOK) $(SUBMISSIONS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
