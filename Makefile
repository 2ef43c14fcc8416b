# The two commands a new user needs: `make demo` and `make test`. Each builds .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=  # e.g. make test PYTEST_ARGS=-x
# pytest-xdist workers for `make test` (the suite waits on sockets and subprocesses more than it
# computes, so more workers than cores pays); TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 4
NODE_DIR := tests/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed-stamp

.PHONY: install node-clients demo test lint typecheck layers unit bench test-long mutation clean

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "winback needs Python 3.11 or newer (set PY=python3.x)")'
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,sandbox]'
	@touch $(STAMP)

install: $(STAMP)

# The second real client per CRM (jsforce, @hubspot/api-client) that tests/integration/node_clients/
# drives, pinned by tests/node/package-lock.json. Without npm, or when npm ci fails (offline), the
# install is skipped, saying so, and those tests skip; under CI=true a failed npm ci stops here
# and the tests fail without node (tests/ci.py).
$(NODE_STAMP): $(NODE_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  echo "npm ci --prefix $(NODE_DIR) (jsforce, @hubspot/api-client)"; \
	  if npm ci --prefix $(NODE_DIR) --no-audit --no-fund --ignore-scripts --loglevel=error; then \
	    touch $@; \
	  else \
	    echo "npm ci failed (see above): the Node client tests will skip"; \
	    case "$$(echo "$${CI:-}" | tr A-Z a-z)" in 1|true|yes) exit 1;; esac; \
	  fi; \
	else \
	  echo "npm not found: the Node client tests (tests/integration/node_clients/) will skip;" \
	    "install Node.js and npm (Debian: apt-get install nodejs npm) to run them"; \
	fi

node-clients: $(NODE_STAMP)

demo: $(STAMP)
	$(BIN)/winback demo

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The import contracts in pyproject.toml ([tool.importlinter]): which layer may import which
# (--no-cache: a cached graph can outlive a package gaining its __init__.py; the check is <1 s).
layers: $(STAMP)
	$(BIN)/lint-imports --no-logo --no-cache

test: lint typecheck layers node-clients
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-long: $(STAMP) node-clients
	$(BIN)/pytest -q --long

# Not part of `make test`: breaks one line of product code at a time in a temporary copy and
# runs the whole suite against each (scripts/mutation.py; MUTATION_ARGS=--quick narrows it).
mutation: $(STAMP)
	$(BIN)/python scripts/mutation.py $(MUTATION_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .grimp_cache
