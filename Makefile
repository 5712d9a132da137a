# tcr: two commands for a newcomer: `make run` starts everything with demo data, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench chaos install browser clean compose-check asyncapi

$(STAMP): pyproject.toml shared/pyproject.toml services/*/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,lint]"
	@touch $(STAMP)

install: $(STAMP)

# Headless Chromium for the dashboard test (Debian's package). As root it installs directly; otherwise through
# sudo when that works without a password. When it cannot, `make test` goes on and the browser test skips saying
# why, except under CI=true, where a missing browser fails the run.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=env; \
	  elif sudo -n true 2>/dev/null; then SUDO="sudo env"; \
	  else SUDO=; fi; \
	  if [ -n "$$SUDO" ] && $$SUDO DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	     $$SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; then :; \
	  elif [ "$$CI" = true ]; then echo "chromium is missing and could not be installed (CI=true)" >&2; exit 1; \
	  else echo "chromium is missing: run 'sudo apt-get install chromium fonts-noto-cjk' once; the browser test skips" >&2; fi; }

run: $(STAMP)
	$(BIN)/python deploy/run_local.py

# Style (ruff: lint rules and format) and architecture (import-linter: layers and independence contracts).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# The fault suite (a few minutes, on a throwaway PostgreSQL cluster it starts itself): load from 16 clients with
# Idempotency-Keys while each service is killed (-9) and PostgreSQL restarts; prints a table and fails when an
# acknowledged write is lost or doubled, numbers have gaps, the feed repeats or a projection differs from a rebuild.
# `make test` runs a short version (tests/chaos/test_chaos.py). CHAOS_ARGS="--short" or "--phase-seconds 30".
chaos: $(STAMP)
	$(BIN)/python -m tests.chaos $(CHAOS_ARGS)

asyncapi: $(STAMP)
	$(BIN)/python -m tcr_shared.partners.asyncapi --write

compose-check:
	docker compose config --quiet && echo "docker-compose.yml is valid"

clean:
	rm -rf var test-artifacts bench-results .pytest_cache
