"""Autoscaling on the CPU model, shown with real Ray Serve: up under load, down after.

  .venv/bin/python bench/autoscale.py [--clients 4] [--load-s 45] [--idle-s 60]

Deploys raygate (through `raygate up`'s own code path, `serve.launcher.start`) with the
llama.cpp SmolLM2 model autoscaling between 1 and 2 replicas (target_ongoing_requests 1,
upscale delay 2 s, downscale delay 8 s, n_threads 1 per replica: this project's machines
have 2 cores), drives it with closed-loop clients through the openai SDK, then goes idle,
polling `ray.serve.status()` every 0.5 s. Prints the timeline of the model deployment's
replica states and request throughput, and stops Ray at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL = "smollm2-135m-instruct"
DEPLOYMENT = f"model-{MODEL}"
KEY_ENV = "BENCH_AUTOSCALE_KEY"


def serve_config(home: Path, port: int) -> dict[str, Any]:
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "127.0.0.1", "port": port},
        "applications": [
            {
                "name": "raygate",
                "route_prefix": "/",
                "import_path": "serve.app:build_app",
                "args": {
                    "state": {"backend": "memory"},
                    "database": {"url": f"sqlite+aiosqlite:///{home}/autoscale.db"},
                    "ingress": {"num_replicas": 1, "num_cpus": 0.25},
                    "cache": {"exact": {"enabled": False}},
                    "teams": [{"name": "bench"}],
                    "keys": [{"team": "bench", "name": "bench", "key": f"env:{KEY_ENV}"}],
                    "models": [
                        {
                            "name": MODEL,
                            "backend": {"kind": "llama_cpp", "n_ctx": 512, "n_threads": 1},
                            "deployment": {
                                "max_ongoing_requests": 2,
                                "num_cpus": 0.5,
                                "autoscaling": {
                                    "min_replicas": 1,
                                    "max_replicas": 2,
                                    "target_ongoing_requests": 1,
                                    "upscale_delay_s": 2,
                                    "downscale_delay_s": 8,
                                },
                            },
                        }
                    ],
                },
            }
        ],
    }


class Timeline:
    """Polls serve.status() in a thread; records every change of the model's replicas."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.events: list[tuple[float, str, str]] = []
        self.running = 0
        self.peak = 0
        self.completed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._last = ""

    def mark(self, what: str) -> None:
        self.events.append((time.monotonic() - self.start, "phase", what))
        print(f"  {time.monotonic() - self.start:6.1f}s  phase     {what}", flush=True)

    def _poll(self) -> None:
        from ray import serve

        while not self._stop.is_set():
            try:
                app = serve.status().applications["raygate"]
                deployment = app.deployments[DEPLOYMENT]
                states = {
                    str(getattr(k, "value", k)): v for k, v in deployment.replica_states.items()
                }
                self.running = states.get("RUNNING", 0)
                self.peak = max(self.peak, self.running)
                line = f"{deployment.status.value:10} " + " ".join(
                    f"{k}={v}" for k, v in sorted(states.items())
                )
            except Exception as exc:  # status briefly unavailable
                line = f"status error: {type(exc).__name__}"
            if line != self._last:
                self._last = line
                at = time.monotonic() - self.start
                self.events.append((at, "replicas", line))
                print(f"  {at:6.1f}s  replicas  {line}   (done {self.completed})", flush=True)
            self._stop.wait(0.5)

    def __enter__(self) -> Timeline:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def drive(base: str, key: str, clients: int, seconds: float, timeline: Timeline) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=120)
    stop = time.monotonic() + seconds

    async def one() -> None:
        while time.monotonic() < stop:
            try:
                await client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": "Write one sentence about rivers."}],
                    max_tokens=48,
                )
                timeline.completed += 1
            except Exception as exc:
                print(f"  request failed: {type(exc).__name__}: {str(exc)[:100]}", flush=True)
                await asyncio.sleep(0.5)

    await asyncio.gather(*(one() for _ in range(clients)))
    await client.close()


def wait_for(timeline: Timeline, running: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if timeline.running == running:
            return True
        time.sleep(0.5)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--load-s", type=float, default=45.0)
    parser.add_argument("--idle-s", type=float, default=60.0, help="max wait for scale-down")
    parser.add_argument("--port", type=int, default=0, help="HTTP port (default: a free one)")
    args = parser.parse_args()

    from serve import launcher
    from serve.config import load_serve_file

    home = Path(tempfile.mkdtemp(prefix="raygate-autoscale-"))
    os.environ["RAYGATE_HOME"] = str(home)
    os.environ[KEY_ENV] = "sk-bench-" + secrets.token_urlsafe(24)
    path = home / "autoscale.yaml"
    port = args.port or launcher.free_port()
    path.write_text(yaml.safe_dump(serve_config(home, port)))
    print(f"deploying {path} (min 1, max 2 replicas, target_ongoing_requests 1)", flush=True)
    began = time.monotonic()
    base, _ = launcher.start(load_serve_file(path), ready_timeout_s=600)
    print(f"ready in {time.monotonic() - began:.0f} s at {base}", flush=True)
    scaled_up = scaled_down = False
    try:
        with Timeline(time.monotonic()) as timeline:
            time.sleep(3)
            at_rest = timeline.running
            timeline.mark(f"load: {args.clients} clients for {args.load_s:g} s")
            load_began = time.monotonic()
            asyncio.run(drive(base, os.environ[KEY_ENV], args.clients, args.load_s, timeline))
            loaded_s = time.monotonic() - load_began
            scaled_up = timeline.peak >= 2
            timeline.mark(
                f"idle ({timeline.completed} requests, {timeline.completed / loaded_s:.2f}/s)"
            )
            scaled_down = wait_for(timeline, 1, args.idle_s)
            timeline.mark("scaled down" if scaled_down else "still scaled up at the end")
    finally:
        launcher.stop()
    print(
        f"\nreplicas at rest {at_rest}, peak under load {timeline.peak}, "
        f"scaled up: {'yes' if scaled_up else 'NO'}, back down: {'yes' if scaled_down else 'NO'}"
    )
    return 0 if scaled_up and scaled_down else 1


if __name__ == "__main__":
    raise SystemExit(main())
