# Two commands for a newcomer: `make demo` shows the main job, `make test` runs every check.
# Each creates .venv and installs what it needs on a fresh machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit mutation bench bench-analytics clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/evota demo

test: lint typecheck mutation unit

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

# Each security check removed in a copy of the source must make its attack test fail.
mutation: $(STAMP)
	$(BIN)/python scripts/check_attack_tests.py

# Performance, as ratios against baselines measured in the same run.
bench: $(STAMP)
	$(BIN)/python benchmarks/uptane_cycle.py
	$(BIN)/python benchmarks/campaign_server.py
	$(BIN)/python benchmarks/uds_flash.py

# SoC accuracy on PyBaMM drive cycles the fit never saw, and batched-filter throughput;
# SoH, anomaly and RUL figures on the PyBaMM ageing and short fixtures.
bench-analytics: $(STAMP)
	$(BIN)/python benchmarks/analytics/soc.py
	$(BIN)/python benchmarks/analytics/health.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
