# Two commands do all set-up on a fresh Debian/Ubuntu machine with Python 3.11+:
#   make demo   simulate the bundled sample day and write out/demo/{summary.json,steps.csv,plot.png}
#   make test   ruff, mypy and pytest (installs mosquitto when run as root)
#   make fuzz   the fuzz harness at full size (tests/fuzz; `make test` runs a small slice)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck pytest fuzz bench screenshot clean system-deps

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

# 100,000 inputs per in-process parser, 2,000 per process-level target (20,000 OCPP frames);
# the counts and failures land in out/fuzz/report.json (docs/fuzz.md has the last run's).
FUZZ_INPUTS ?= 100000
FUZZ_PROCESS_INPUTS ?= 2000
fuzz: $(VENV)/.dev
	mkdir -p out/fuzz
	DIVERT_FUZZ_INPUTS=$(FUZZ_INPUTS) DIVERT_FUZZ_PROCESS_INPUTS=$(FUZZ_PROCESS_INPUTS) \
	  DIVERT_FUZZ_REPORT=out/fuzz/report.json $(BIN)/pytest -q --durations=0 tests/fuzz

bench: $(VENV)/.dev
	$(BIN)/divert bench --out docs/bench
	$(BIN)/divert bench --plant realistic --out docs/bench

screenshot: $(VENV)/.dev system-deps
	DIVERT_SCREENSHOT=docs/status-page.png $(BIN)/pytest -q tests/daemon/test_status_page.py -k chromium

clean:
	rm -rf $(VENV) out .mypy_cache .pytest_cache .ruff_cache
