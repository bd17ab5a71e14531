# make run    start the example app (SQLite in instance/) and print a ready-to-paste curl line
# make test   run the whole test suite
# make clean  remove the virtualenv, build leftovers and caches
#
# Both create .venv with python3 when it is missing, and (re)install the project with its
# test extras whenever setup.cfg or pyproject.toml changed since the last install.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test clean venv

venv: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
		|| { echo "Flask-ClientAuth needs Python 3.10 or newer ($(PYTHON) is older)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m example_app

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
