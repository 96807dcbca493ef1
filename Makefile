# OpenQueue developer entry points. `make` (or `make help`) lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

.PHONY: help run test lint format check bench venv

help: ## List available targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  %-10s %s\n", $$1, $$2}'

run: ## Run the development server (scripts/run.sh)
	bash scripts/run.sh

test: ## Full test run: lint, migration check, SQLite + PostgreSQL legs
	scripts/test.sh

venv: ## Create .venv with the test and lint tools (make test does this itself)
	@[ -x .venv/bin/python ] || python3 -m venv .venv
	.venv/bin/pip install -q -r requirements-dev.txt

lint: venv ## Run ruff lint and format checks, and the type checker
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

format: venv ## Auto-format and auto-fix with ruff
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

check: test ## What CI runs (same as test)

bench: venv ## Benchmark vs raw SQL (~5 min, fsync on); rewrites docs/benchmarks.md
	.venv/bin/python bench/run.py --write-docs
