# make run       start the example app (SQLite in instance/) and print a ready-to-paste curl line;
#                PORT=5001 make run (or make run PORT=5001) serves on another port (default 5000).
#                It installs the project with its portal extra (Flask-WTF, for the "Sharing & keys"
#                pages' CSRF tokens), not the test extras; it prints the portal's URL and login.
# make test      run the whole test suite (installing Debian's chromium for the browser tests when it is
#                missing and apt-get can); the PostgreSQL / MariaDB / Redis tests run only when
#                CLIENTAUTH_TEST_POSTGRES_URL / _MARIADB_URL / _REDIS_URL are set (see README),
#                and the summary says how many were skipped for each
# make test-quick  the quick loop: the suite less the tests marked slow, those that start a real
#                server or process (pytest -m "not slow"); make test stays the whole suite
# make check     quality gates: ruff check, ruff format --check, mypy --strict, docs, packaging smoke test
# make docs      build the Sphinx documentation (warnings are errors) into docs/_build/html
# make dist      build sdist + wheel, twine check, install the wheel in a fresh venv and smoke-test it
# make test-min  run the suite on SQLite against the lowest dependency versions (constraints-min.txt)
# make clean     remove the virtualenvs, build leftovers and caches
#
# Each creates .venv with python3 when it is missing, and (re)installs the project with the
# extras it needs whenever setup.cfg or pyproject.toml changed since the last install
# (test-min uses .venv-min instead).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# make run: the project and its portal extra (example_app imports only flask_clientauth, Flask, Flask-WTF
# and the standard library)
RUN_STAMP := $(VENV)/.installed-run
PORT   ?= 5000

.PHONY: run test test-quick clean venv check lint typecheck docs dist test-min chromium

venv: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
		|| { echo "Flask-ClientAuth needs Python 3.10 or newer ($(PYTHON) is older)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test]'
	@touch $(STAMP)

$(RUN_STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[portal]'
	@touch $(RUN_STAMP)

run: $(RUN_STAMP)
	PORT=$(PORT) $(BIN)/python -m example_app

# The browser tests (tests/test_portal_browser.py) drive Debian's Chromium: installed here when it is
# missing and apt-get can (root); otherwise they are skipped, saying why.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing Debian's chromium for the browser tests"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
		else \
			echo "note: /usr/bin/chromium is missing: the browser tests will be skipped (apt-get install chromium)"; \
		fi; \
	fi

test: $(STAMP) chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-quick: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow' $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(MIN_VENV) build dist docs/_build *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# -- quality gates ----------------------------------------------------------------------
# The test, docs and dev extras (sphinx, ruff, mypy, build, twine, ...) in .venv.
DEV_STAMP := $(VENV)/.installed-dev

$(DEV_STAMP): setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test,docs,dev]'
	@touch $(DEV_STAMP)

check: lint typecheck docs dist

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

docs: $(DEV_STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

dist: $(DEV_STAMP)
	PYTHON=$(BIN)/python scripts/check_dist.sh

# -- minimum versions -------------------------------------------------------------------
# A virtualenv of its own with the lowest versions setup.cfg allows; the suite runs on SQLite.
MIN_VENV  ?= .venv-min
MIN_STAMP := $(MIN_VENV)/.installed

$(MIN_STAMP): setup.cfg pyproject.toml constraints-min.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
		|| { echo "Flask-ClientAuth needs Python 3.10 or newer ($(PYTHON) is older)" >&2; exit 1; }
	rm -rf $(MIN_VENV)
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install -c constraints-min.txt -e '.[test]'
	@touch $(MIN_STAMP)

test-min: $(MIN_STAMP)
	env -u CLIENTAUTH_TEST_POSTGRES_URL -u CLIENTAUTH_TEST_MARIADB_URL -u CLIENTAUTH_TEST_REDIS_URL \
		$(MIN_VENV)/bin/python -m pytest -x -q $(PYTEST_ARGS)
