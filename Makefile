# Everything runs inside .venv, created on first use from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# Most tests wait on the emulator, on Dagster processes starting, or on rate limits: two
# workers use the machine's two cores while the other waits.
PYTEST_WORKERS ?= 2
HOME_CONFIG := $(DAGSTER_HOME)/dagster.yaml

.PHONY: install demo dev test test-fast test-slow bench bench-peers sample clean

install: $(STAMP) $(HOME_CONFIG)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The instance reads dagster.yaml from DAGSTER_HOME; keep the project's copy there.
$(HOME_CONFIG): dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(HOME_CONFIG)

demo: install
	$(BIN)/python -m userflow_assets.demo

dev: install
	$(BIN)/python -m userflow_assets.dev

test: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

test-fast: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not slow"

test-slow: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m slow

# Every benchmark script in turn; benchmarks/peers_compare.py also writes BENCHMARKS.md.
bench: install
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# Only the comparison with the peers (naive script, drt, bare httpx loop): BENCHMARKS.md.
# ARGS=--quick for one small run.
bench-peers: install
	$(BIN)/python benchmarks/peers_compare.py $(ARGS)

sample: install
	$(BIN)/python -m userflow_assets.sample --out data/warehouse.duckdb

clean:
	rm -rf data .dagster_home .pytest_cache
