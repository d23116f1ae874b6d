# Storykeep. `make run` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@# axe-core for the browser tests' accessibility checks (test-only; never served).
	@# Without npm: skipped (and said so) on a laptop; in CI (CI set) that fails the build.
	@if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund --loglevel=error; \
	 elif [ -n "$${CI:-}" ] && [ "$${CI}" != 0 ] && [ "$${CI}" != false ]; then \
	   echo "npm not found, and CI is set: the axe-core checks cannot run" >&2; exit 1; \
	 else echo "npm not found: the accessibility (axe-core) checks will be skipped"; fi
	touch $(STAMP)

install: $(STAMP)

## run: migrate, load fresh demo data and serve on http://127.0.0.1:8000 (SQLite + ./var)
run: install
	$(BIN)/storykeep db upgrade
	$(BIN)/storykeep demo
	$(BIN)/storykeep serve --host 127.0.0.1 --port 8000

## test: the whole suite on SQLite, and on PostgreSQL too when STORYKEEP_TEST_DATABASE_URL is set
test: install
	$(BIN)/pytest

## lint: ruff, mypy, hadolint, and models-versus-migrations
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app vault grants
	$(BIN)/hadolint Dockerfile
	$(BIN)/pytest -q tests/test_migrations.py

## bench: seed SQLite and PostgreSQL, load the server with wrk, write docs/benchmarks.md
bench: install
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; \
	  else \
	    echo "make bench needs wrk. Install it with: sudo apt-get install -y wrk"; exit 1; \
	  fi; }
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
