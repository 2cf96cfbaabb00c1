PYTHON ?= python
.PHONY: install test lint format demo bench

install:  ## editable install with every extra (CPU torch pinned first)
	$(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -c .ci/constraints.txt -e ".[all]"

test:  ## the test suite (GPU tests skip without CUDA)
	$(PYTHON) -m pytest -q

lint:
	ruff check .
	ruff format --check .

format:
	ruff check --fix .
	ruff format .
