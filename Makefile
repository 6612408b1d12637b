# Easel: `make run` starts the whole platform on embedded defaults; `make test` runs the checks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint format services services-down migrate seed bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt requirements-nodeps.txt | $(BIN)/activate
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt client/pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q -e ./client
	touch $@

migrate: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput -v0

seed: migrate
	$(BIN)/python manage.py seed_demo --base-url http://127.0.0.1:$(PORT)

## Install, migrate, seed the demo and start web + workers + beat (Ctrl-C stops everything).
run: seed
	@echo "Starting web, workers and beat on http://127.0.0.1:$(PORT)/ (Ctrl-C stops all)"
	# honcho gives each process its own PORT (web's + 100 × its place), so the banner is told
	# the web's address outright.
	PORT=$(PORT) EASEL_DEMO_URL=http://127.0.0.1:$(PORT) PATH="$(CURDIR)/$(BIN):$$PATH" \
		$(BIN)/honcho start -f Procfile

## Lint and run every test against real PostgreSQL, Redis, S3 (SeaweedFS) and Chromium.
test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	scripts/services.sh up
	eval "$$(scripts/services.sh env)" && $(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

services: $(VENV)/.installed-dev
	scripts/services.sh up

services-down:
	scripts/services.sh down

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/generation_throughput.py
	$(BIN)/python bench/adapter_switch.py
	scripts/services.sh up && eval "$$(scripts/services.sh env)" && \
		$(BIN)/python bench/catalog_import.py && \
		$(BIN)/python bench/api_load.py && \
		$(BIN)/python bench/query_plans.py

clean:
	rm -rf var/ $(VENV)
