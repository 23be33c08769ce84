# The two commands a learner needs:  make lab   and   make test.
# Both set the course up on first use (venv, packages, Jupyter kernel, verified data); later runs take seconds.

# The newest supported Python on PATH (3.13, then 3.12, then 3.11), else python3: make PYTHON=python3.12 picks one.
# course_lib/tools/python_check.py refuses an unsupported one and has a .venv made by another Python rebuilt.
# (A name on PATH counts only if it runs: a pyenv shim of a version that is not selected does not.)
PYTHON      ?= $(firstword $(foreach v,3.13 3.12 3.11,$(shell python$(v) -c "" >/dev/null 2>&1 && command -v python$(v))) \
                 $(shell command -v python3 2>/dev/null))
PY_CHECK    := course_lib/tools/python_check.py
# torch first, as a CPU build: on Linux the +cpu wheel (PyPI's Linux torch pulls a multi-GB CUDA build), from the
# package indexes pip already knows (a wheel on this machine's disk counts), else from PyTorch's CPU index;
# macOS and Windows take PyPI's wheel (CPU, and MPS on Apple).
TORCH       := torch==2.13.0
ifeq ($(shell uname -s),Linux)
TORCH_WHEEL := $(TORCH)+cpu
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
else
TORCH_WHEEL := $(TORCH)
endif
INSTALL_TORCH = $(1)/bin/python -m pip install --quiet "$(TORCH_WHEEL)" 2>/dev/null \
                || $(1)/bin/python -m pip install --quiet "$(TORCH_WHEEL)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
VENV        := .venv
BIN         := $(VENV)/bin
# The set-up stamp is keyed on the dependency files: editing a pin re-runs the install.
DEPS_KEY    := $(shell cat pyproject.toml environment.yml Makefile | sha256sum | cut -c1-16)
STAMP       := $(VENV)/.setup-$(DEPS_KEY)
DATA_MIRROR ?= ../shared/data
KERNEL      := embeddings-course
LAB_ARGS    ?=
PYTEST_ARGS ?=
# The peer environment: PyLate (it pins sentence-transformers 5.3), kept apart from the course's 6.x.
PEERS       := .venv-peers
PEERS_KEY   := $(shell cat benchmarks/peers/requirements.txt Makefile | sha256sum | cut -c1-16)
PEERS_STAMP := $(PEERS)/.setup-$(PEERS_KEY)

.PHONY: setup lab test data help peers sandbox

help:
	@echo "make lab    set up on first use, then open JupyterLab on notebooks/ (LAB_ARGS='--no-browser --port 8899')"
	@echo "make test   set up on first use, then run the whole test suite"
	@echo "make data   fetch and verify the data sets (mirror DATA_MIRROR=$(DATA_MIRROR), else download)"
	@echo "make peers  the peer environment .venv-peers (PyLate, for the MaxSim comparison; make test makes it)"
	@echo "make workbook  run every solution notebook headless -> build/REPORT.md (COURSE_SMALL=1: quick run)"
	@echo "make check NB=01  grade a copy of your notebooks/01_*.ipynb and print your points"
	@echo "authors: make nbval NB=05  run solution notebook 05 under nbval (small mode)"
	@echo "instructors: make notebooks | make grade SUBMISSIONS=dir | make feedback | make student-release DEST=dir"
	@echo "python: the newest of 3.13, 3.12, 3.11 found (now: $(PYTHON)); make PYTHON=python3.12 ... picks one"

setup: $(STAMP) data

$(STAMP):
	@test -n "$(PYTHON)" || { echo "error: no Python found; install Python 3.11, 3.12 or 3.13"; exit 1; }
	@$(PYTHON) $(PY_CHECK)
	@echo ">>> setting up $(VENV) with $(PYTHON) (Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'))"
	@$(PYTHON) $(PY_CHECK) --venv $(VENV) || { test $$? = 3 && rm -rf $(VENV); }
	rm -f $(VENV)/.setup-*
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(call INSTALL_TORCH,$(VENV))
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (embeddings-course)"
	touch $@

data: $(STAMP)
	$(BIN)/python -m course_lib.fetch --mirror "$(DATA_MIRROR)"

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_ARGS)

test: instructor-only setup peers sandbox
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The grader's sandbox is bubblewrap (Linux). As root on Debian/Ubuntu it is installed here; otherwise this
# says what to install: `make grade` refuses to grade without it, `make check` and `make test` still run
# (tests/test_grading.py skips, unless COURSE_REQUIRE_SANDBOX=1, as in CI).
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo ">>> installing bubblewrap, the grader's sandbox"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -qq bubblewrap >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap >/dev/null; } \
	      || echo "warning: could not install bubblewrap; see docs/INSTRUCTORS.md"; \
	  else echo "note: bubblewrap (bwrap) is not installed: make grade needs it (sudo apt install bubblewrap)"; fi; }

# PyLate for tests/test_maxsim.py and benchmarks/bench_maxsim.py; never imported in .venv.
# pylate goes in with --no-deps: its fast-plaid dependency pins a CUDA build of an older torch, and only
# pylate.scores is used (requirements in benchmarks/peers/requirements.txt).
peers: $(PEERS_STAMP)

$(PEERS_STAMP):
	@echo ">>> setting up the peer environment $(PEERS) (PyLate 1.6 with sentence-transformers 5.3)"
	@$(PYTHON) $(PY_CHECK) --venv $(PEERS) || { test $$? = 3 && rm -rf $(PEERS); }
	rm -f $(PEERS)/.setup-*
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(call INSTALL_TORCH,$(PEERS))
	$(PEERS)/bin/python -m pip install --quiet -r benchmarks/peers/requirements.txt
	$(PEERS)/bin/python -m pip install --quiet --no-deps "pylate==1.6.0"
	touch $@

.PHONY: notebooks grade check workbook feedback student-release instructor-only nbval
# A student copy (make student-release) has no solutions/: what needs them says so instead of failing obscurely.
STUDENT_COPY := $(if $(wildcard solutions/*.py),,yes)
instructor-only:
	@test -z "$(STUDENT_COPY)" || { echo "This is a student copy of the course (no solutions/): that target is for the instructor's repository. Learners use make lab and make check NB=01."; exit 2; }

notebooks: instructor-only $(STAMP)
	$(BIN)/python -m course_lib.tools.notebooks build

# make nbval NB=05   the solution notebook(s) built by make notebooks, under nbval in small mode, cell by cell (an
# author's check while editing; make test executes every solution notebook once, through the grader)
nbval: notebooks
	COURSE_SMALL=1 $(BIN)/python -m pytest -p no:cacheprovider --nbval-lax --nbval-kernel-name $(KERNEL) \
	  build/nbgrader/source/$(NB)*/*.ipynb

# make grade SUBMISSIONS=path/to/folder   (one subfolder per student) -> build/grades.csv and build/nbgrader/gradebook.db
# Each submission runs in its own sandbox (bubblewrap); GRADE_ARGS='--cell-timeout 60 --memory-gb 4' to change limits.
grade: instructor-only setup sandbox
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=<folder with one subfolder per student>"; exit 2; }
	$(BIN)/python -m course_lib.tools.grading grade "$(SUBMISSIONS)" $(GRADE_ARGS)

# make check NB=01   grades a copy of your notebooks/01_*.ipynb and prints the points per exercise
check: setup
	@test -n "$(NB)" || { echo "usage: make check NB=01"; exit 2; }
	$(BIN)/python -m course_lib.tools.grading check "$(NB)"

# Every solution notebook, headless and in order: executed copies, plots and build/REPORT.md under build/.
# Full mode unless COURSE_SMALL=1; WORKBOOK_ARGS='--only 05 08' runs some. Exits non-zero if a notebook fails.
workbook: instructor-only setup
	$(BIN)/python -m course_lib.tools.workbook $(WORKBOOK_ARGS)

# nbgrader's feedback pages for every graded submission: build/nbgrader/feedback/<student>/<notebook>/
feedback: instructor-only setup
	$(BIN)/python -m course_lib.tools.grading feedback

# make student-release DEST=../course-2027   a copy without solutions, tests or rubrics, as a new git repository
student-release: instructor-only $(STAMP)
	@test -n "$(DEST)" || { echo "usage: make student-release DEST=<new or empty folder>"; exit 2; }
	$(BIN)/python -m course_lib.tools.release "$(DEST)"
