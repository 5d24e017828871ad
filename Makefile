# Two commands do everything on a fresh clone: `make demo` and `make test`.
# Both create .venv/ on first use (about 4 minutes, 3 GB) and reuse it after.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nemo-resume-installed

.PHONY: demo test lint venv bench clean-venv

venv: $(STAMP)

# Reinstall when the pins or the package metadata change.
$(STAMP): constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[nemo,test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# ruff (pyflakes, import order) and mypy over the package; .ci/run runs both before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

demo: $(STAMP)
	$(PY) scripts/demo.py

bench: $(STAMP)
	$(PY) benchmarks/run.py --out docs/benchmarks.md

clean-venv:
	rm -rf $(VENV)
