# Quantum Signals. `make run` starts the whole stack; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
VENDOR := backend/web/static/vendor

.PHONY: install run lint test chaos bench clean

install: $(STAMP) $(VENDOR)/.stamp

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
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

test: lint
	$(PY) -m pytest

chaos: install
	$(PY) -m pytest tests/chaos -m chaos -s

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules $(VENDOR)
