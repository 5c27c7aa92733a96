# The two commands of the quick start: `make demo` and `make test`. Each creates .venv and installs what it
# needs when it is missing or pyproject.toml changed.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.tradedb-installed
PYTEST_ARGS ?=

.PHONY: demo test test-embedded test-timescale test-citus lint format bench docs install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,prefect,docs]'
	@touch $@

install: $(STAMP)

## Start the embedded PostgreSQL, set up the schema, load a sample market, print a summary.
demo: $(STAMP)
	$(BIN)/tradedb demo

## The whole test suite: against TRADEDB_TEST_DATABASE_URL when set, else an embedded server it starts.
test: $(STAMP)
	@tools/system-deps.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The suite against a fresh embedded server (PostgreSQL 18), whatever TRADEDB_TEST_DATABASE_URL says.
test-embedded: $(STAMP)
	@tools/system-deps.sh
	env -u TRADEDB_TEST_DATABASE_URL $(BIN)/python -m pytest $(PYTEST_ARGS)

## The market-data suites with the market-data tables as TimescaleDB hypertables, on a real build (from
## ../shared/vendor, built once for PostgreSQL 15 and cached in ~/.cache/tradedb; about 2 minutes the first time)
## and a PostgreSQL 15 server of the session's own with TimescaleDB preloaded.
TIMESCALE_SUITES := tests/integration/test_timescale.py tests/integration/test_marketdata.py \
	tests/integration/test_marketdata_replace.py tests/integration/test_marketdata_real.py \
	tests/integration/test_books.py tests/integration/test_analytics.py
test-timescale: $(STAMP)
	tools/build-timescaledb.sh
	TRADEDB_TEST_TIMESCALE=1 $(BIN)/python -m pytest $(TIMESCALE_SUITES) $(PYTEST_ARGS)

## tradedb on a real Citus cluster: Citus built from ../shared/vendor for PostgreSQL 15 (once, cached in
## ~/.cache/tradedb; about 1 minute the first time), a coordinator and two workers started by the tests; then the
## market-data, execution, risk, order-book and analytics suites, unchanged, against a cluster's coordinator
## (the market-data tables distributed by security, the execution tables by account).
CITUS_SUITES := tests/integration/test_marketdata.py tests/integration/test_marketdata_replace.py \
	tests/integration/test_marketdata_real.py tests/integration/test_execution.py tests/integration/test_risk.py \
	tests/integration/test_books.py tests/integration/test_analytics.py
test-citus: $(STAMP)
	tools/build-citus.sh
	$(BIN)/python -m pytest tests/integration/test_citus.py $(PYTEST_ARGS)
	TRADEDB_TEST_CITUS=1 $(BIN)/python -m pytest $(CITUS_SUITES) $(PYTEST_ARGS)

## ruff (lint and format), mypy strict (src, tests, bench, tools), import-linter's layer contracts (pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/python tools/async_to_sync.py
	$(BIN)/ruff format src tests bench tools
	$(BIN)/ruff check --fix src tests bench tools

## Benchmarks (not part of `make test`); figures are ratios against baselines measured in the same run.
bench: $(STAMP)
	$(BIN)/python bench/run.py

## The documentation site from docs/ into site/, every warning an error (broken links, anchors, API references).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
