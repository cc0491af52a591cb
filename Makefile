# Every developer entry point. `make dev` runs the product locally; `make test` runs every test;
# `make deploy` puts it on AWS.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PYTHON    := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
# SAM CLI pins its own boto3/click/pydantic: it gets a virtualenv of its own.
SAM_VENV  := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
BUILD_TOOLS_STAMP := $(SAM_VENV)/.build-tools-installed
SAM       := $(SAM_VENV)/bin/sam
CARGO     ?= cargo
# Lambda's arm64 (Graviton) target; cargo-lambda links it with zig.
LAMBDA_TARGET := aarch64-unknown-linux-gnu
# Extra `sam deploy` arguments, e.g. SAM_DEPLOY_FLAGS="--config-env production".
SAM_DEPLOY_FLAGS ?= --guided
export CARGO_TERM_COLOR ?= never
export SAM_CLI_TELEMETRY := 0

.PHONY: help venv venv-sam build dev receiver test test-unit lint package deploy clean chaos bench

help: ## This list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): infra/requirements.lock
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.lock
	touch $@

$(SAM_STAMP): infra/requirements-sam.lock
	python3 -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-sam.lock
	touch $@

$(BUILD_TOOLS_STAMP): infra/requirements-build.lock $(SAM_STAMP)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-build.lock
	touch $@

venv: $(STAMP) ## Project-local Python virtualenv: the AWS emulator (moto) and template tools, pinned

venv-sam: $(SAM_STAMP) ## Project-local virtualenv with the pinned AWS SAM CLI

build: ## Debug build of the three functions (the local stack runs these binaries)
	$(CARGO) build --workspace --bins

dev: venv build ## Run the whole product locally on the embedded AWS emulator (foreground)
	PYTHONPATH=infra exec $(PYTHON) -m local_stack

# A receiver for the quickstart: verifies each delivery with the webhook's secret (WEBHOOK_SECRET)
# using the official Standard Webhooks library and prints it. Port: RECEIVER_PORT (4000); the
# answer to a verified delivery: RECEIVER_STATUS (204).
receiver: venv ## Local receiver on 127.0.0.1:4000 (RECEIVER_PORT): verifies deliveries with WEBHOOK_SECRET (v1a: WEBHOOK_PUBLIC_KEY), prints them
	@exec $(PYTHON) infra/receiver.py

test: venv venv-sam build ## Every test: template lint, unit, template, integration on the local stack
	bash infra/run-tests.sh

# The ledger test (tests/tests/it/ledger.rs) scaled up; it prints its ledger line. Override with
# LEDGER_EVENTS, LEDGER_FAULT_RATE, LEDGER_RECEIVER_FAILURE, LEDGER_KILLS, LEDGER_SEED.
chaos: venv build ## Ledger under chaos, large: 1000 events, 10 % AWS faults, failing receivers, kills
	bash infra/nextest.sh
	LEDGER_EVENTS=$${LEDGER_EVENTS:-1000} LEDGER_FAULT_RATE=$${LEDGER_FAULT_RATE:-0.1} LEDGER_KILLS=$${LEDGER_KILLS:-6} \
	  $(CARGO) nextest run -p webhooks-tests --test it -E 'test(/^ledger::/)' --profile chaos --no-capture

lint: venv venv-sam ## cfn-lint and sam validate --lint on template.yaml; any finding fails
	bash infra/lint.sh

# SAM runs `cargo lambda build --release --arm64 --bin <Binary>` per function. cargo-lambda and
# zig come from .venv-sam, which therefore goes first on PATH.
package: $(BUILD_TOOLS_STAMP) ## sam build: the functions for Lambda (arm64, release), with their zipped sizes
	rustup target add $(LAMBDA_TARGET)
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(SAM) build
	$(SAM_VENV)/bin/python infra/zipped_sizes.py .aws-sam/build

deploy: package ## package, then sam deploy (guided: asks for the stack, region and parameters)
	$(SAM) deploy $(SAM_DEPLOY_FLAGS)

# Figures, not tests (never part of `make test`): release builds of the functions, a private
# local stack on free ports, a quarter of an hour of load (1000 events at 1/s). Prints one table and keeps it, as JSON, in
# target/bench/. wrk, the raw HTTP baseline of the throughput figure, comes from apt if missing.
BENCH_SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# The arm64 sizes need make package's tools (cargo-lambda, zig) and target; BENCH_ARM64=0 skips
# them (the first cross build of the AWS crates takes about 40 minutes on two cores).
bench: venv $(BUILD_TOOLS_STAMP) ## Speed and cost figures (release builds; ~35 min, first run longer): one table, JSON in target/bench/
	[ "$${BENCH_ARM64:-auto}" = 0 ] || rustup target add $(LAMBDA_TARGET)
	command -v wrk >/dev/null || $(BENCH_SUDO) apt-get install -y -qq wrk || { $(BENCH_SUDO) apt-get update -qq && $(BENCH_SUDO) apt-get install -y -qq wrk; } || echo "wrk could not be installed: the throughput figure will have no raw baseline" >&2
	$(CARGO) build --release -p subscriptions -p matcher -p delivery -p webhooks-bench
	$(PYTHON) infra/bench/run.py

clean: ## Remove build output, the virtualenvs and local state
	rm -rf target $(VENV) $(SAM_VENV) .dev .aws-sam
