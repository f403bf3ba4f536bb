"""The vLLM serving path on CPU (`make test-gpu-path`, in .venv-gpu; not part of `make test`)."""
