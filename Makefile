# The verbs run in the virtual environment `make install` creates (.venv), or in the active one.
VENV ?= $(or $(VIRTUAL_ENV),.venv)
PYTHON := $(VENV)/bin/python
TORCH ?= cpu
export PATH := $(abspath $(VENV))/bin:$(PATH)
.PHONY: install test lint format demo bench

install:  ## create .venv (python3 -m venv), install torch (TORCH=cpu|cuda) and elmo with every extra
	TORCH=$(TORCH) VENV=$(VENV) bash scripts/install.sh

test: | $(PYTHON)  ## the test suite (GPU tests skip without CUDA)
	$(PYTHON) -m pytest -q

lint: | $(PYTHON)  ## ruff, the import-layer contracts (lint-imports) and the type checker (mypy)
	ruff check .
	ruff format --check .
	lint-imports
	mypy

format: | $(PYTHON)
	ruff check --fix .
	ruff format .

demo: | $(PYTHON)  ## start `elmo serve`, train on examples/debian-deps-mini over REST, print predictions
	$(PYTHON) examples/demo.py

bench: | $(PYTHON)  ## head step benchmark on the current device (CPU: small sizes)
	$(PYTHON) -m elmo_core.cli.main bench head --labels 50000 --dim 256 --batch 128 --precision fp8 --steps 3 --json

$(PYTHON):
	@echo "no virtual environment at $(VENV): run 'make install' first" >&2; exit 1
