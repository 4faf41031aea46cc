# Two commands do all set-up on a fresh Debian/Ubuntu machine with Python 3.11+:
#   make demo   simulate the bundled sample day and write out/demo/{summary.json,steps.csv,plot.png}
#   make test   ruff, mypy and pytest (installs mosquitto when run as root)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck pytest bench screenshot clean system-deps

$(BIN)/activate:
	@$(PYTHON) -m venv $(VENV) || { echo "cannot create a virtualenv: on Debian/Ubuntu run 'sudo apt-get install python3-venv'" >&2; rm -rf $(VENV); exit 1; }
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.demo: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q -e '.[plot]'
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q -e '.[dev,plot]'
	touch $@

demo: $(VENV)/.demo
	$(BIN)/divert simulate --out out/demo

system-deps:
	@if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto systemd >/dev/null; \
	  else \
	    echo "The MQTT tests need the mosquitto broker: sudo apt-get install mosquitto" >&2; exit 1; \
	  fi; \
	fi

lint: $(VENV)/.dev
	$(BIN)/ruff check divert chargers tests bench

typecheck: $(VENV)/.dev
	$(BIN)/mypy

pytest: $(VENV)/.dev system-deps
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: $(VENV)/.dev
	$(BIN)/divert bench --out docs/bench
	$(BIN)/divert bench --plant realistic --out docs/bench

screenshot: $(VENV)/.dev system-deps
	DIVERT_SCREENSHOT=docs/status-page.png $(BIN)/pytest -q tests/daemon/test_status_page.py -k chromium

clean:
	rm -rf $(VENV) out .mypy_cache .pytest_cache .ruff_cache
