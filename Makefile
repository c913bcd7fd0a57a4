# The two commands of a fresh machine: `make demo` (the main job) and `make test`.
# Each builds ./venv from the requirements files first (again only when they change).
PYTHON ?= python3
VENV := venv
PY := $(VENV)/bin/python

.PHONY: demo test lint

$(VENV)/.installed: requirements.txt requirements-dev.txt functions/requirements.txt \
		pyproject.toml components/pyproject.toml eventcraft/pyproject.toml sandbox/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

demo: $(VENV)/.installed
	$(PY) -m order_saga demo

lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/actionlint .github/workflows/*.yml

test: lint
	$(PY) -m pytest
