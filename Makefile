# raygate: `make run` starts the embedded default, `make test` runs every check.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
UV     := $(BIN)/uv

.PHONY: install run test lint typecheck unit bench lock clean guardrails-eval test-gpu-path

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

# The vLLM path (Ray Serve LLM's LLMServer with an injected engine) behind the real ingress,
# on CPU, in its own venv with the `gpu` extra (ray[llm] pins vLLM, torch and CUDA wheels:
# several GB). Regenerate its lock like `make lock` with `--extra gpu --extra dev
# -o requirements-gpu.lock`.
# The venv lives outside the checkout, keyed by its lock, so CI's fresh clones on the same
# machine reuse it (about 11 GB; the first build downloads the CUDA wheels, ~7.5 minutes).
GPU_VENV  ?= $(HOME)/.cache/raygate/venv-gpu-$(shell sha256sum requirements-gpu.lock | cut -c1-16)
GPU_STAMP := $(GPU_VENV)/.installed

$(GPU_STAMP): requirements-gpu.lock
	test -x $(GPU_VENV)/bin/python || $(PYTHON) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/pip install --quiet --require-hashes --no-deps -r requirements-gpu.lock
	touch $@

# The editable install points the shared venv at this checkout, every time.
test-gpu-path: $(GPU_STAMP)
	$(GPU_VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .
	$(GPU_VENV)/bin/pytest -q -p no:cacheprovider tests_gpu

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
