# interphase — the two commands: `make demo` and `make test`.
# Both create .venv when it is missing and install what they need first.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck install clean-data bench system-deps dft-deps vendor

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# System packages for the tests (not needed by `make demo`): Debian's psi4, the
# libraries GPAW compiles against (then the pyscf/gpaw extras, built once),
# chromium, which the dashboard's browser tests drive through Playwright, and
# docker-compose, which validates docker-compose.yml (no Docker engine needed).
# The SLURM tests install slurm-wlm and munge themselves (deploy/slurm/local-cluster.sh).
SYSTEM_PACKAGES := psi4 libxc-dev libopenblas-dev chromium docker-compose
DFT_STAMP := $(VENV)/.installed-dft

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "system-deps: apt-get install$$missing"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing; } \
	    || echo "system-deps: apt-get install$$missing failed; the tests needing them skip"; \
	else \
	  echo "system-deps: missing$$missing. As root run: apt-get install -y$$missing"; \
	  echo "  (until then the psi4, gpaw and dashboard browser tests skip)"; \
	fi

$(DFT_STAMP): pyproject.toml | $(STAMP) system-deps
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev,pyscf]"
	@if [ -e /usr/include/xc.h ]; then \
	  echo "building gpaw (CC=g++, a few minutes the first time)"; \
	  CC=g++ $(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev,dft]"; \
	else echo "libxc-dev missing: gpaw not installed, its tests skip (see make system-deps)"; fi
	touch $(DFT_STAMP)

dft-deps: $(DFT_STAMP)

# The demo is a campaign: examples/demo.yaml through `interphase campaign run`, on the
# embedded defaults (SQLite and a local Prefect server in the data directory: ./.interphase,
# which the demo creates, so any `interphase` command run in this checkout finds it; see the
# README on the data directory), CPU. PySCF (for its HF/def2-SVP level) installs from PyPI.
# Each run is a new campaign, demo-<date>, and reuses the labels of the runs before it.
DEMO_STAMP := $(VENV)/.installed-demo

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[pyscf]"
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	mkdir -p .interphase
	$(BIN)/interphase campaign run examples/demo.yaml --name demo-$$(date +%Y%m%d-%H%M%S)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) $(DFT_STAMP) lint typecheck
	$(BIN)/pytest

# Re-download the dashboard's bundled htmx and 3Dmol.js (npm pack, pinned checksums).
vendor: $(STAMP)
	$(BIN)/python -m interphase.dashboard.vendor

bench: $(STAMP)
	$(BIN)/python bench/import_speed.py
