# raygate: `make run` starts the embedded default, `make test` runs every check.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
UV     := $(BIN)/uv

.PHONY: install run test lint typecheck unit bench lock clean guardrails-eval

install: $(STAMP)

# Everything installs from the hash-pinned lock; --no-deps so nothing unpinned slips in.
# llama-cpp-python builds from source once (about 10 minutes on 2 cores); pip caches the wheel.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

run: install
	$(BIN)/raygate up --config serve/configs/local.yaml

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q

test: lint typecheck unit

bench: install
	bash bench/run.sh

# Guardrail figures (docs/guardrails.md): PII precision/recall, injection TPR/FPR, latency.
guardrails-eval: install
	$(BIN)/python -m guardrails.eval

# Regenerate the lock (needs network): exact pins with hashes for Linux x86_64, CPython 3.11.
lock:
	$(PYTHON) -m pip install --quiet --target /tmp/raygate-uv uv==0.13.9
	PYTHONPATH=/tmp/raygate-uv python3 -m uv pip compile pyproject.toml --extra dev \
	  --override lock-overrides.txt --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 -o requirements.lock

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
