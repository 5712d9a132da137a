# tcr: two commands for a newcomer: `make run` starts everything with demo data, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench install browser clean compose-check asyncapi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

# Headless Chromium for the dashboard test (Debian's package; root or sudo needed once).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }

run: $(STAMP)
	$(BIN)/python deploy/run_local.py

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

asyncapi: $(STAMP)
	$(BIN)/python -m tcr_shared.partners.asyncapi --write

compose-check:
	docker compose config --quiet && echo "docker-compose.yml is valid"

clean:
	rm -rf var test-artifacts bench-results .pytest_cache
