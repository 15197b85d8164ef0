# IQTS: every target sets up what it needs on a fresh machine (see scripts/bootstrap.sh).
SHELL := /bin/bash
.DEFAULT_GOAL := help

export IQTS_STATE_DIR ?= $(CURDIR)/.iqts
export IQTS_TEST_REDIS_PORT ?= 6390
export IQTS_TEST_REDIS_URL ?= redis://127.0.0.1:$(IQTS_TEST_REDIS_PORT)/0
# the repo's own modules get their .pyc cached too (the site-packages are compiled by bootstrap's env step)
unexport PYTHONDONTWRITEBYTECODE
export COVERAGE_FILE ?= $(IQTS_STATE_DIR)/coverage/.coverage
UV = $(shell command -v uv >/dev/null 2>&1 && echo uv || echo python3 -m uv)
RUN = $(UV) run --frozen --all-extras
PYTEST = $(RUN) pytest
# the suite is CPU-bound: serial is fastest on 2 cores (each test module has a database of its own)

.PHONY: help setup run test test-all eval bench lint fmt clean-state

help:
	@echo "make run       start IQTS on embedded defaults (API, inbox, MCP, chat, worker)"
	@echo "make test      the representative test suite (real PostgreSQL + pgvector, real Redis)"
	@echo "make test-all  every test, including slow and model-driven ones"
	@echo "make eval      the agent on every eval scenario with IQTS_LLM (default: the local model); HTML report"
	@echo "make bench     benchmarks, printed as ratios against their peers"
	@echo "make lint      ruff, mypy, import contracts (lint-imports), dependencies (deptry);  make fmt  format"

setup:
	@scripts/bootstrap.sh env

run: setup
	@scripts/bootstrap.sh kernels
	$(RUN) iqts up

COVERAGE = @mkdir -p $(dir $(COVERAGE_FILE)) && rm -f $(COVERAGE_FILE)*

test:
	@scripts/bootstrap.sh env redis browser kernels
	$(COVERAGE)
	$(PYTEST) -m "not slow" -q --cov --cov-report= --durations=25
	$(RUN) python scripts/coverage_by_package.py

test-all:
	@scripts/bootstrap.sh env redis browser model kernels
	$(COVERAGE)
	$(PYTEST) -q --cov --cov-report=
	$(RUN) python scripts/coverage_by_package.py

eval:
	@scripts/bootstrap.sh env model
	$(RUN) iqts eval --report $(IQTS_STATE_DIR)/eval/report.html

bench:
	@scripts/bootstrap.sh env redis kernels
	$(RUN) iqts bench all

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy agent tools knowledge engine approvals ui evals tests/support
	$(RUN) lint-imports
	$(RUN) deptry .

fmt: setup
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

clean-state:
	-$(RUN) iqts db stop
	-test -f $(IQTS_STATE_DIR)/redis/redis.pid && kill $$(cat $(IQTS_STATE_DIR)/redis/redis.pid)
	rm -rf $(IQTS_STATE_DIR)
