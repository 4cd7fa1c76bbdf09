# Sapphire's entry points. The README's two commands are `make up` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
STAMP := $(VENV)/.installed

.PHONY: up test lint typecheck pytest testenv system venv crds lock bench clean

## up: run the whole platform locally from the bundled example TradingAgents
up: venv
	$(BIN)/sapphire up -f manifests/examples/

## test: install what is missing, then ruff, the import-linter contracts (.importlinter), mypy --strict
## and the whole pytest suite
test: system venv testenv lint typecheck pytest

system:
	@scripts/ensure-system-packages.sh

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/lock.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(UV) pip install --quiet --python $(BIN)/python -r requirements/lock.txt
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

## testenv: build (once, cached) kube-apiserver, kube-controller-manager, kubectl and etcd
testenv:
	@if [ -n "$$KUBEBUILDER_ASSETS$$SAPPHIRE_TEST_KUBECONFIG" ]; then echo "using KUBEBUILDER_ASSETS/SAPPHIRE_TEST_KUBECONFIG"; \
	else tests/testenv/build.sh; fi

lint: venv
	$(BIN)/ruff check sapphire operator trader_api agents migrations tests bench scripts
	$(BIN)/ruff format --check sapphire operator trader_api agents migrations tests bench scripts
	$(BIN)/python scripts/lint_imports.py --no-cache

typecheck: venv
	$(BIN)/mypy sapphire tests bench scripts/lint_imports.py

pytest: venv
	$(BIN)/pytest

## crds: regenerate crds/ from the pydantic spec models
crds: venv
	$(BIN)/sapphire crds generate

## lock: re-resolve requirements/lock.txt from pyproject.toml
lock: venv
	$(UV) pip compile pyproject.toml --extra test --python-version 3.11 -o requirements/lock.txt --quiet

## bench: run every benchmark in bench/ (not part of `make test`)
bench: system venv testenv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
