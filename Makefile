# Tradewire developer entry points. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := test

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
ARGS ?=
PYTEST_ARGS ?=

export UV_PYTHON_DOWNLOADS := never

.PHONY: install up test lint clean distclean check-python bench-install ops-tools

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || { \
		echo "error: Python >= 3.11 is required; '$(PYTHON)' is $$($(PYTHON) --version 2>/dev/null || echo 'missing')." >&2; \
		echo "       Install Python 3.11+ or run 'make PYTHON=/path/to/python3.11 install'." >&2; \
		exit 1; }

# Idempotent: bootstraps the pinned uv only when missing or at another version, then syncs the lock
# (a new .venv is created from $(PYTHON); an existing one is kept).
install: check-python
	@if [ "$$($(UV) --version 2>/dev/null | cut -d' ' -f1-2)" != "uv $(UV_VERSION)" ]; then \
		echo "bootstrapping uv $(UV_VERSION) into $(TOOLS)"; \
		$(PYTHON) -m venv $(TOOLS) && $(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"; \
	fi
	$(UV) sync --frozen --inexact --group test $(if $(wildcard $(VENV)/pyvenv.cfg),,--python $(PYTHON))

# The peers the benchmarks compare against (vectorbt, backtesting.py, backtrader); not needed by `make test`.
bench-install: install
	$(UV) sync --frozen --group test --group bench

up: install
	$(VENV)/bin/tradewire up $(ARGS)

# Runs every linter even if one fails; leaves $$status at 1 if any failed.
RUN_LINT = status=0; \
	echo "+ ruff check ."; $(VENV)/bin/ruff check . || status=1; \
	echo "+ mypy libs services"; $(VENV)/bin/mypy libs services || status=1

lint: install
	@$(RUN_LINT); exit $$status

# The real operations tools the deploy tests run (promtool, Alertmanager, compose, ...); see tools/ops.
ops-tools: install
	@for script in tools/ops/install-*.sh; do [ -e "$$script" ] || continue; bash "$$script" || echo "warning: $$script failed" >&2; done

# Lint first, but always run the whole pytest suite; fail if either failed.
test: install ops-tools
	@$(RUN_LINT); \
	[ $$status = 0 ] || echo "make test: lint FAILED (running pytest anyway)" >&2; \
	echo "+ $(PY) -m pytest $(PYTEST_ARGS)"; $(PY) -m pytest $(PYTEST_ARGS) || status=1; \
	exit $$status

clean:
	find . -path ./$(VENV) -prune -o -path ./$(TOOLS) -prune -o -type d -name __pycache__ -print0 | xargs -0 rm -rf
	rm -rf .pytest_cache .mypy_cache .ruff_cache dist build

distclean: clean
	rm -rf $(VENV) $(TOOLS)
