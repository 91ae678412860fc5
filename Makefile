# The two commands a newcomer needs:
#   make demo   install into .venv and run the daemon against local simulated peers
#   make test   install everything the tests need (Debian peers too) and run them
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint pytest venv test-venv clean bench

$(BIN)/monai-slo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

venv: $(BIN)/monai-slo

$(VENV)/.test-deps: pyproject.toml $(BIN)/monai-slo
	$(BIN)/pip install -q -e '.[test]'
	touch $@

test-venv: $(VENV)/.test-deps

demo: venv
	$(BIN)/monai-slo demo

lint: test-venv
	$(BIN)/ruff check monai_slo tests
	$(BIN)/ruff format --check monai_slo tests
	$(BIN)/mypy

pytest: test-venv
	scripts/install-test-deps.sh
	$(BIN)/pytest

test: lint pytest

# Benchmarks beside their baselines (minutes; not part of test): make bench BENCH_ARGS=--quick
bench: test-venv
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
