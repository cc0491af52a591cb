# Every developer entry point. `make dev` runs the product locally; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PYTHON    := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
CARGO     ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: help venv build dev test test-unit lint clean

help: ## This list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): infra/requirements.lock
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.lock
	touch $@

venv: $(STAMP) ## Project-local Python virtualenv: the AWS emulator (moto) and template tools, pinned

build: ## Debug build of the three functions (the local stack runs these binaries)
	$(CARGO) build --workspace --bins

dev: venv build ## Run the whole product locally on the embedded AWS emulator (foreground)
	PYTHONPATH=infra exec $(PYTHON) -m local_stack

test: venv build ## Every test: unit, template, integration on the local stack
	bash infra/run-tests.sh

clean: ## Remove build output, the virtualenv and local state
	rm -rf target $(VENV) .dev
