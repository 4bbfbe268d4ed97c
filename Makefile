# Clipron OAuth. `make run` serves locally on moto; `make test` runs every test.
# We target Python 3.12 (the Lambda runtime follows the interpreter that packages the app).
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do \
	  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then command -v $$p; break; fi; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run mcp test lint bench soak clean vendor deploy package

$(STAMP): requirements.txt requirements-vendor.txt requirements-dev.txt
	@if [ -z "$(PYTHON)" ]; then echo "error: Python 3.12 not found (set PYTHON=/path/to/python3.12)" >&2; exit 2; fi
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@# pytest rewrites the asserts of the test modules and of its plugins' whole distributions (hypothesis, anyio,
	@# xdist: ~125 modules) on first import; write those caches once at install, as pip compiles the rest, not in
	@# every worker of the first run (a test file changed later is rewritten again, that file alone)
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -q -n0 --collect-only tests >/dev/null
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m chalicelib.local

# the example MCP server protected by Clipron (README "Connect AI agents"); start it beside `make run`
mcp: $(STAMP)
	$(BIN)/python examples/mcp_server.py

# pytest runs on xdist workers (pyproject.toml). The wall time is printed even when tests fail; any
# non-zero pytest exit fails the target, 5 (no test collected) included, so CI never passes on nothing.
# Bytecode caches are written even where PYTHONDONTWRITEBYTECODE is set: the workers, the local runs and the
# example apps then compile the code (and pytest its rewritten test modules) once, not once per process.
test: $(STAMP)
	$(BIN)/ruff check .
	@start=$$(date +%s); status=0; env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	  echo "make test: $$(( $$(date +%s) - start )) s"; \
	  if [ $$status -eq 5 ]; then echo "make test: FAILED: pytest collected no tests" >&2; fi; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	@for script in $(filter-out bench/soak_local.py,$(wildcard bench/*.py)); do \
	  echo "== $$script"; $(BIN)/python $$script || exit 1; done

# 10,000 code exchanges against the local run, memory and latency per thousand. Refresh tokens live 60 s
# (grants 120 s) so the stored state levels off and memory must too; SOAK_ARGS="" keeps the real lifetimes.
SOAK_ARGS ?= --refresh-seconds 60
soak: $(STAMP)
	$(BIN)/python bench/soak_local.py $(SOAK_ARGS)

# Deploying (README "Deploy to AWS"): vendor/ holds requirements-vendor.txt without dependencies.
STAGE ?= dev
vendor: $(STAMP) requirements-vendor.txt
	rm -rf vendor
	$(BIN)/pip install --quiet --no-deps --only-binary=:all: --target vendor -r requirements-vendor.txt
	rm -rf vendor/bin

deploy: vendor
	@if grep -q ':key/00000000-0000-0000-0000-000000000000' .chalice/policy-$(STAGE).json; then \
	  echo "error: .chalice/policy-$(STAGE).json names placeholder ARNs: run" \
	       "$(BIN)/python -m chalicelib.cli provision --stage $(STAGE) first" >&2; exit 2; fi
	$(BIN)/chalice deploy --stage $(STAGE)

package: vendor
	rm -rf out/$(STAGE)
	$(BIN)/chalice package --stage $(STAGE) --merge-template infra/$(STAGE).json out/$(STAGE)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache out vendor
