PYTHON ?= python
.PHONY: install test lint format demo bench

install:  ## editable install with every extra (CPU torch pinned first)
	$(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -c .ci/constraints.txt -e ".[all]"

test:  ## the test suite (GPU tests skip without CUDA)
	$(PYTHON) -m pytest -q

lint:  ## ruff, the import-layer contracts (lint-imports) and the type checker (mypy)
	ruff check .
	ruff format --check .
	lint-imports
	mypy

format:
	ruff check --fix .
	ruff format .

demo:  ## start `elmo serve`, train on examples/debian-deps-mini over REST, print predictions
	$(PYTHON) examples/demo.py

bench:  ## head step benchmark on the current device (CPU: small sizes)
	$(PYTHON) -m elmo_core.cli.main bench head --labels 50000 --dim 256 --batch 128 --precision fp8 --steps 3 --json
