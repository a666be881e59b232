# Two commands for a fresh clone (see README): `make lab` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TORCH := torch==2.13.0
LAB_ARGS ?=
# the series' matrices are small: one thread each is faster, and extra threads spin when the machine is busy
THREAD_VARS := OMP_NUM_THREADS MKL_NUM_THREADS OPENBLAS_NUM_THREADS
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# make grade: submissions graded at once (one thread each), and the time limit of each in seconds
JOBS ?= 2
TIMEOUT ?= 600
# make test: pytest workers, each taking whole test files (a module-scoped fixture is built once); one thread each
TEST_JOBS ?= 2

.PHONY: setup lab reference test lint bench student grade autograder-check html clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed: make PYTHON=/path/to/python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)   # CPU build, pinned first so nothing pulls CUDA
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" \
	  $(foreach v,$(THREAD_VARS),--env $(v) 1)   # the venv's kernel: one thread per math library
	-@[ -d .git ] && $(BIN)/pre-commit install >/dev/null && echo "pre-commit hooks installed (nbstripout, ruff)"
	touch $(STAMP)

setup: $(STAMP)

# work/: the learner's copies, exercises unsolved; a notebook once there is never overwritten (it holds your answers);
# rebuilt when the series changes, which adds new notebooks and refreshes the checks
work/.built: $(STAMP) $(wildcard notebooks/*.ipynb)
	$(BIN)/python scripts/coursework.py build --work work
	touch $@

lab: work/.built   # your copies in work/ (the solutions are in notebooks/: `make reference`)
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(LAB_ARGS) work/00_start_here.ipynb

reference: setup   # the notebooks with their reference solutions
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(LAB_ARGS) notebooks/00_start_here.ipynb

lint: setup
	$(BIN)/ruff check helpers tests notebooks scripts

test: lint
	$(BIN)/python -m pytest tests -n $(TEST_JOBS) --dist loadfile -p no:cacheprovider --durations=15

bench: setup
	$(BIN)/python scripts/benchmark.py

html: setup      # executed series as static HTML in dist/html/ (every figure embedded; explorers as static figures)
	$(BIN)/python scripts/export_html.py --output-dir dist/html

student: setup   # dist/NAME/student (no solutions, public tests) and dist/NAME/autograder (all tests)
	$(BIN)/python scripts/coursework.py build

grade: setup     # make grade NOTEBOOK=01_chain_rule_product SUBMISSIONS=path/to/submissions [JOBS=2] [TIMEOUT=600]
	$(BIN)/python scripts/coursework.py grade $(NOTEBOOK) $(SUBMISSIONS) --jobs $(JOBS) --timeout $(TIMEOUT)

autograder-check: setup   # make autograder-check NOTEBOOK=03_gradient_checking: the reference graded in a fresh
	$(BIN)/python scripts/coursework.py build notebooks/$(NOTEBOOK).ipynb   # venv built only from what its zip declares
	$(BIN)/python scripts/coursework.py check-env $(NOTEBOOK)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
