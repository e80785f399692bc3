# Quantum Signals. `make run` starts the whole stack; `make test` runs the tests.
PYTHON ?= python3
# `make test PYTHON=python3.13`: each interpreter gets a venv of its own (.venv for the default one). A pyenv shim of
# a version that is installed but not selected fails to run, so that version's own binary is used.
PYTHON_BIN := $(shell $(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null || ls -d $$HOME/.pyenv/versions/*/bin/$(PYTHON) 2>/dev/null | tail -n 1)
ifeq ($(PYTHON_BIN),)
$(error $(PYTHON) was not found: install Python 3.11 or newer, or pass PYTHON=/path/to/python3)
endif
VENV := $(if $(filter python3,$(PYTHON)),.venv,.venv-$(notdir $(PYTHON)))
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
VENDOR := backend/web/static/vendor

# Cache compiled bytecode even where the environment says not to (PYTHONDONTWRITEBYTECODE=1 on some CI images):
# otherwise every test worker and every process the tests start compiles the project's modules again.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install system-deps run lint test test-fast chaos bench contract clean

install: $(STAMP) $(VENDOR)/.stamp

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml clients/python/pyproject.toml
	$(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .  # the console command quantum-signals
	# The bot client (clients/python), editable: its tests under tests/clients_python import it.
	$(PY) -m pip install --quiet -e ./clients/python
	touch $@

# Browser libraries come from npm (lock file), copied where Flask serves them: no CDN at run time.
$(VENDOR)/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/socket.io-client/dist/socket.io.min.js $(VENDOR)/
	cp node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js $(VENDOR)/
	touch $@

run: install
	$(PY) -m backend.stack

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy  # strict on backend/ and tasks/ (pyproject.toml [tool.mypy])

# What the tests need from the system (Chromium, nginx): installed when missing, or the command to run.
system-deps:
	@bash .ci/system-deps

# Everything: lint, then every layer (the full chaos scenarios excepted: pyproject's addopts, `make chaos`), on
# TEST_WORKERS pytest-xdist workers: most tests wait on processes and I/O, so more workers than cores pay off.
# Each worker has its own Redis and its own shared chaos stack; the parts of tests that assert latencies run while
# no other test does (`alone`, harness/alone.py), and those tests go first (tests/conftest.py). The workers steal
# queued tests from each other (`--dist worksteal`). Measured on 2 cores: 8:04 on 3 workers with `--dist load`;
# with worksteal 6:20-6:56, then 6:07 with the `alone` tests first; on 4 workers 5:20 and 5:14.
TEST_WORKERS ?= 4
test: system-deps lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=20

# The in-process layer only: pure code and the web app in this process on the suite's Redis (no processes
# of the project, no browser, no stack); tests/conftest.py marks the rest `processes`. Also on TEST_WORKERS
# workers (24-26 s on 3 or 4), which steal queued tests from each other (`--dist worksteal`): the ping wheel's
# tests wait on real pings for seconds, and handed out in fixed chunks they left one worker running alone at the end.
test-fast: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not processes and not chaos"

chaos: system-deps install
	$(PY) -m pytest tests/chaos -m chaos -s

bench: install
	$(PY) -m bench

# The published contract, docs/openapi.json and docs/asyncapi.json, from backend/contract.py's models; a test
# fails while the committed copies are stale.
contract: install
	$(PY) -m backend.contract_docs

clean:
	rm -rf $(VENV) node_modules $(VENDOR)
