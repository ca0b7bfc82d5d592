# Everything runs inside .venv, created on first use from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# Many tests wait: on the emulator, on Dagster processes starting, on a schedule's minute. Four
# workers keep two cores busy meanwhile (on 2 cores: 11 min against 14.5 with two workers).
PYTEST_WORKERS ?= 4
HOME_CONFIG := $(DAGSTER_HOME)/dagster.yaml

.PHONY: install chromium postgres mariadb demo dev test test-fast test-slow bench bench-peers sample clean

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

# What some tests need from the machine, installed with Debian's packages when missing (root
# with apt-get; the tests never use a package's system service). Otherwise, or with
# USERFLOW_NO_APT=1, those tests are skipped with the reason in pytest's summary; under
# CI=true that skip is a failure (tests/needs.py).
#   $(call apt_need,<present when this shell test holds>,<package>,<what it is for>)
define apt_need
	@if $(1); then exit 0; fi; \
	why=""; \
	if [ -n "$(USERFLOW_NO_APT)" ]; then why="USERFLOW_NO_APT is set"; \
	elif [ "$$(id -u)" != 0 ]; then why="installing it needs root"; \
	elif ! command -v apt-get >/dev/null 2>&1; then why="no apt-get on this machine"; \
	elif ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null); then \
	  why="apt-get could not install $(2)"; fi; \
	if [ -n "$$why" ]; then echo "No $(2) ($$why): $(3) will be skipped"; \
	else echo "Installed Debian's $(2) for $(3)"; fi
endef

# The browser test drives Debian's Chromium, never a browser download of its own.
CHROMIUM := /usr/bin/chromium
chromium:
	$(call apt_need,[ -x $(CHROMIUM) ],chromium,the browser test)

# The Postgres tests start a throwaway cluster from PostgreSQL's server binaries
# (tests/postgres_server.py), or use USERFLOW_TEST_POSTGRES_URL.
postgres:
	$(call apt_need,ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "$(USERFLOW_TEST_POSTGRES_URL)" ],postgresql,the Postgres tests)

# The MySQL source's live tests start a throwaway MariaDB (tests/mysql_server.py).
MARIADBD := /usr/sbin/mariadbd
mariadb:
	$(call apt_need,[ -x $(MARIADBD) ],mariadb-server,the MySQL source's live tests)

demo: install
	$(BIN)/python -m userflow_assets.demo

dev: install
	$(BIN)/python -m userflow_assets.dev

# `make test` runs everything but the long fault soak, which runs in `make bench`. Its budget is
# 10 minutes on a 2-core machine; `make test-fast` leaves out the slow end-to-end tests.
test: install chromium postgres mariadb
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not soak"

test-fast: install postgres mariadb
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not slow and not soak"

test-slow: install chromium postgres mariadb
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "slow and not soak"

# Every benchmark script in turn; benchmarks/peers_compare.py also writes BENCHMARKS.md.
bench: install postgres
	$(BIN)/python -m pytest -m soak
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# Only the comparison with the peers (naive script, drt, bare httpx loop): BENCHMARKS.md.
# ARGS=--quick for one small run.
bench-peers: install
	$(BIN)/python benchmarks/peers_compare.py $(ARGS)

sample: install
	$(BIN)/python -m userflow_assets.sample --out data/warehouse.duckdb

clean:
	rm -rf data .dagster_home .pytest_cache
