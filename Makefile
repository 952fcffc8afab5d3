# One virtualenv at the repo root; Debian's Chromium from apt when it is missing.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)

.PHONY: install chromium redis node-clients run demo demo-cluster test test-fast lint format bench clean fuzz soak

install: $(VENV)/.installed chromium redis node-clients

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Xvfb lets the tests drive a visible (HEADLESS=false) window on a machine with no screen; xdotool
# types into it as a person would (the profile login test closes the window with Ctrl+Shift+W).
# bubblewrap, socat and setpriv (util-linux) make each browser's sandbox (SPEC §11).
chromium:
	@for tool in chromium Xvfb xdotool bwrap socat setpriv; do command -v $$tool >/dev/null 2>&1 || missing=1; done; \
	[ -z "$$missing" ] || { \
		echo "installing Debian's chromium, xvfb, xdotool, bubblewrap and socat"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium xvfb xdotool bubblewrap socat util-linux >/dev/null; }

# Cluster mode's registry (SPEC §10): the tests start their own redis-server on a free loopback port.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing Debian's redis-server"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

# The Puppeteer client the CDP relay tests run. puppeteer-core never downloads a browser, and its
# version 24 still runs on Debian's Node 18, so apt's nodejs is enough.
node-clients: tests/clients/node_modules/.installed

tests/clients/node_modules/.installed: tests/clients/package.json tests/clients/package-lock.json
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
		echo "installing Debian's nodejs and npm"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --prefix tests/clients --no-audit --no-fund --loglevel=error
	touch $@

run: install
	$(PY) -m app

demo: install
	$(PY) -m scripts.demo

demo-cluster: install
	$(PY) -m scripts.demo_cluster

test: install
	$(PY) -m pytest -q

# Everything that starts no Chromium (unit tests, the API contract, server limits): a quick loop.
test-fast: install
	$(PY) -m pytest -q -m "not browser"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/black --check -q .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/black -q .

bench: install
	$(PY) -m bench.run

# The contract fuzzing of `make test`, long: FUZZ_EXAMPLES cases per operation and phase (the short
# form in `make test` runs 8); FUZZ_SCENARIOS stateful scenarios (default: half of FUZZ_EXAMPLES).
FUZZ_EXAMPLES ?= 200
fuzz: install
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q tests/integration/test_fuzz_contract.py

# Create → drive over CDP → delete for SOAK_MINUTES, sampling the memory of the service, its Patchright
# driver(s) and the whole process tree, and its file descriptors; fails when, once warm, service + drivers
# RSS grows by more than SOAK_MEMORY_LIMIT (10) MiB per 1,000 sessions (SPEC §9) or the descriptor count
# clearly rises. Figures to bench/soak.json. Not part of `make test`.
SOAK_MINUTES ?= 30
soak: install
	SOAK_MINUTES=$(SOAK_MINUTES) $(PY) -m scripts.soak

clean:
	rm -rf $(VENV) .demo .pytest_cache .ruff_cache tests/clients/node_modules
