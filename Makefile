# The two set-up commands are `make run` and `make test`; each builds .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# pytest-xdist workers for `make test` (measured on 2 cores: most of a test's time is waiting on
# servers, browsers and sleeps); TEST_WORKERS=0 runs serially, TEST_WORKERS=6 with six.
TEST_WORKERS ?= 4

.PHONY: run test lint format audit bench clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# `make run PORT=9000 HOST=0.0.0.0` (or PORT/HOST in the environment) picks where the web listens.
run: $(VENV)/.runtime
	$(PY) manage.py runplatform $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

test: $(VENV)/.dev
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Known vulnerabilities in the pinned requirements (asks PyPI's advisory database: needs the
# internet, so CI runs it in .github/workflows/ci.yml, not in .ci/run).
audit: $(VENV)/.dev
	$(VENV)/bin/pip-audit --strict -r requirements.txt -r requirements-dev.txt

bench: $(VENV)/.dev
	$(PY) -m bench

clean:
	rm -rf $(VENV) var
