# Kinfolio: `make run` (hub with demo data on SQLite) and `make test` (whole suite).
# Both set everything up first and are idempotent: the .venv and the database are reused.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test bench fuzz schema clean help

help:
	@echo "make run    - set up .venv, migrate, load demo data, serve on $${KINFOLIO_HOST:-127.0.0.1}:$${KINFOLIO_PORT:-8000}"
	@echo "make test   - set up .venv and run the whole test suite (KINFOLIO_TEST_DATABASE_URL selects PostgreSQL)"
	@echo "make bench  - run the benchmarks under bench/"
	@echo "make fuzz   - Schemathesis GraphQL fuzzing against the app for ~3 minutes: no 5xx allowed"
	@echo "make schema - regenerate schemas/kinfolio.graphql and schemas/json/*.json"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required; set PYTHON=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

# The independent VC verifier the credential tests run (node + Digital Bazaar's libraries).
JS_STAMP := tests/js/node_modules/.installed-stamp
$(JS_STAMP): tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	@touch $(JS_STAMP)

setup: $(STAMP)

# Where the public samples sit beside the project, `make run` uses their JSON-LD contexts and CASE
# schemas (each pinned by SHA-256), so credentials and framework imports work in the demo.
SAMPLES := ../shared/samples
RUN_ENV := $(if $(wildcard $(SAMPLES)/jsonld-contexts/contexts-index.json),KINFOLIO_JSONLD_CONTEXTS_DIR=$${KINFOLIO_JSONLD_CONTEXTS_DIR:-$(SAMPLES)/jsonld-contexts}) \
           $(if $(wildcard $(SAMPLES)/case/case-v1p1-json-schemas),KINFOLIO_CASE_SCHEMAS_DIR=$${KINFOLIO_CASE_SCHEMAS_DIR:-$(SAMPLES)/case/case-v1p1-json-schemas})

run: setup
	$(BIN)/kinfolio db upgrade
	$(BIN)/kinfolio demo
	$(RUN_ENV) $(BIN)/kinfolio serve

test: setup $(JS_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

fuzz: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,fuzz]'
	$(BIN)/python -m tests.fuzz.graphql_fuzz $(FUZZ_ARGS)

BENCH_STAMP := $(VENV)/.bench-installed-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	@touch $(BENCH_STAMP)

# Every benchmark on SQLite and (when reachable) PostgreSQL; sizes via BENCH_ARGS, e.g.
# make bench BENCH_ARGS="--learners 50000 --activities-per-learner 200 --heavy-learner-activities 2000000"
bench: setup $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

schema: setup
	$(BIN)/kinfolio schema export

clean:
	rm -rf $(VENV) data .pytest_cache tests/js/node_modules
