# One virtualenv at the repo root; Debian's Chromium from apt when it is missing.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)

.PHONY: install chromium run demo test lint format bench clean

install: $(VENV)/.installed chromium

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Xvfb lets the tests drive a visible (HEADLESS=false) window on a machine with no screen.
chromium:
	@command -v chromium >/dev/null 2>&1 && command -v Xvfb >/dev/null 2>&1 || { \
		echo "installing Debian's chromium and xvfb"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium xvfb >/dev/null; }

run: install
	$(PY) -m app

demo: install
	$(PY) -m tests.demo

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/black --check -q .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/black -q .

bench: install
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .demo .pytest_cache .ruff_cache
