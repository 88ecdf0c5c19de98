# Two commands on a fresh machine (Python 3.11+ and nothing else):
#   make run    start everything (embedded PostgreSQL and Redis when none is configured)
#   make test   run the whole test suite
#   make bench  measure throughput and latency beside the bare stack (docs/benchmarks.md)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test-tools bench-tools run test test-unit test-integration test-e2e lint format bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,sandbox]'
	@touch $@

#: programs outside Python the tests and the bench call (Debian packages; see the script)
test-tools:
	tools/install-tools test

bench-tools:
	tools/install-tools bench

run: install
	$(BIN)/fulfillment run

#: the whole suite in $(TEST_PROCESSES) processes, the slowest tests listed at the end so
#: they stay visible. A test that starts the whole system (tests/e2e, tests/chaos) starts
#: its own servers, ports and processes, so two of them may run side by side. Work
#: stealing keeps both processes busy to the end: those tests come first in the
#: collection and take most of the time, and --dist load handed them all to one process.
TEST_PROCESSES ?= 2
test: install test-tools
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist worksteal --durations=15 $(PYTEST_ARGS)

#: quick local loops over one tier (`make test` stays the whole)
test-unit: install test-tools
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: install test-tools
	$(BIN)/pytest --durations=10 tests/integration $(PYTEST_ARGS)

test-e2e: install test-tools
	$(BIN)/pytest --durations=10 tests/e2e tests/chaos $(PYTEST_ARGS)

bench: install bench-tools
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) *.egg-info
