"""Fair share on a shared model, measured: throughput shares under flooding, light-team latency.

Two halves, same scenarios and the same report:

  .venv/bin/python bench/fairshare.py simulate [--backend memory|redis|both] [--seconds 5]
      The library alone: FairQueue (memory; Redis with two "replicas" on separate clients)
      with simulated service times (50 ms +-20 %, capacity 2). Includes a FIFO baseline:
      the same load with every request in one queue, i.e. without fair share.

  .venv/bin/python bench/fairshare.py live [--url http://127.0.0.1:8000] [--seconds 30]
      The real platform: `raygate up --config bench/fairshare.yaml` (started and stopped by
      this script unless --url names a running one; keys from BENCH_KEY_HEAVY / _LIGHT /
      _GOLD, generated when this script starts it) driven with the official openai SDK
      (async). SmolLM2 on llama.cpp, capacity as bench/fairshare.yaml says (1 slot).

Scenarios (closed-loop clients: each sends its next request when the last one ends):
  1:1    heavy (weight 1, 16-24 clients) floods next to light (weight 1, 4 clients)
  3:1    heavy (weight 1) floods next to gold (weight 3, 4 clients)
  p50    light alone, one request at a time; then the same while heavy floods
Targets (raygate issue 6): each team's share of completions within 10 % of its weighted
share; light's p50 while heavy floods within 2x of its unloaded p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIG = ROOT / "bench" / "fairshare.yaml"
MODEL = "smollm2-135m-instruct"
SHARE_TOLERANCE = 0.10
LATENCY_FACTOR = 2.0

# One request of a team; raises on refusal. Returns nothing: the driver times it.
Send = Callable[[str], Awaitable[None]]


@dataclass
class Load:
    """Closed-loop clients per team for one scenario."""

    clients: Mapping[str, int]
    completed: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)


async def run_load(send: Send, load: Load, seconds: float, warmup: float) -> Load:
    """Count completions that end inside the measuring window (after the warm-up)."""
    start = time.monotonic()
    window = (start + warmup, start + warmup + seconds)
    stop = asyncio.Event()

    async def client(team: str) -> None:
        while not stop.is_set():
            began = time.monotonic()
            try:
                await send(team)
            except Exception as exc:  # a 429 (queue timeout) or a broken request
                if window[0] <= time.monotonic() <= window[1]:
                    load.refused[team] = load.refused.get(team, 0) + 1
                if "429" not in str(exc) and "fair_share" not in str(exc):
                    print(f"  {team}: {type(exc).__name__}: {str(exc)[:120]}", file=sys.stderr)
                await asyncio.sleep(0.05)
                continue
            ended = time.monotonic()
            if window[0] <= ended <= window[1]:
                load.completed[team] = load.completed.get(team, 0) + 1
                load.latencies.setdefault(team, []).append(ended - began)

    tasks = [
        asyncio.create_task(client(team)) for team, n in load.clients.items() for _ in range(n)
    ]
    await asyncio.sleep(warmup + seconds)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return load


def shares_report(
    name: str, load: Load, weights: Mapping[str, float], check: bool = True
) -> dict[str, Any]:
    total = sum(load.completed.get(t, 0) for t in load.clients)
    weight_sum = sum(weights[t] for t in load.clients)
    rows = {}
    ok = True
    for team in load.clients:
        done = load.completed.get(team, 0)
        share = done / total if total else 0.0
        expected = weights[team] / weight_sum
        deviation = (share - expected) / expected
        ok = ok and abs(deviation) <= SHARE_TOLERANCE
        rows[team] = {
            "clients": load.clients[team],
            "weight": weights[team],
            "completed": done,
            "refused": load.refused.get(team, 0),
            "share": round(share, 4),
            "weighted_share": round(expected, 4),
            "deviation": round(deviation, 4),
        }
    print(f"\n{name}  ({total} completions in the window)")
    print(
        f"  {'team':8} {'clients':>7} {'weight':>6} {'done':>6} {'429':>5} {'share':>7} "
        f"{'target':>7} {'dev':>7}"
    )
    for team, r in rows.items():
        print(
            f"  {team:8} {r['clients']:>7} {r['weight']:>6g} {r['completed']:>6} "
            f"{r['refused']:>5} {r['share']:>7.3f} {r['weighted_share']:>7.3f} "
            f"{r['deviation']:>+7.1%}"
        )
    if check:
        print(f"  within {SHARE_TOLERANCE:.0%} of weighted shares: {'yes' if ok else 'NO'}")
    return {"teams": rows, "within_tolerance": ok if check else None, "total": total}


async def p50_of(send: Send, team: str, n: int) -> float:
    latencies = []
    for _ in range(n):
        began = time.monotonic()
        await send(team)
        latencies.append(time.monotonic() - began)
    return statistics.median(latencies)


async def latency_report(
    send: Send, probe: str, flood: str, flood_clients: int, n: int, settle: float
) -> dict[str, Any]:
    unloaded = await p50_of(send, probe, n)
    stop = asyncio.Event()

    async def flooder() -> None:
        while not stop.is_set():
            try:
                await send(flood)
            except Exception:
                await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(flooder()) for _ in range(flood_clients)]
    await asyncio.sleep(settle)  # let the flood fill the queue first
    loaded = await p50_of(send, probe, n)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    ratio = loaded / unloaded
    print(
        f"\np50 of {probe} (sequential, n={n}): unloaded {unloaded * 1000:.1f} ms, "
        f"while {flood} floods with {flood_clients} clients {loaded * 1000:.1f} ms "
        f"-> {ratio:.2f}x (target <= {LATENCY_FACTOR:g}x: "
        f"{'yes' if ratio <= LATENCY_FACTOR else 'NO'})"
    )
    return {"unloaded_ms": unloaded * 1000, "loaded_ms": loaded * 1000, "ratio": ratio}


async def scenarios(
    send: Send,
    weights: Mapping[str, float],
    heavy_clients: int,
    seconds: float,
    warmup: float,
    probe_n: int,
    baseline: Send | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if baseline is not None:
        load = await run_load(baseline, Load({"heavy": heavy_clients, "light": 4}), seconds, warmup)
        out["fifo_baseline"] = shares_report(
            "FIFO baseline (no fair share): heavy floods next to light", load, weights, check=False
        )
    load = await run_load(send, Load({"heavy": heavy_clients, "light": 4}), seconds, warmup)
    out["one_to_one"] = shares_report("1:1  heavy floods next to light", load, weights)
    load = await run_load(send, Load({"heavy": heavy_clients, "gold": 4}), seconds, warmup)
    out["three_to_one"] = shares_report("3:1  heavy floods next to gold", load, weights)
    out["latency"] = await latency_report(send, "light", "heavy", heavy_clients, probe_n, warmup)
    return out


# -- simulate: the library alone ------------------------------------------------------


async def simulate(backend: str, seconds: float) -> dict[str, Any]:
    from serve.fairshare import FairQueue, FairSharePolicy, MemoryFairQueue

    policy = FairSharePolicy(weights={"gold": 3})
    weights = {t: policy.weight(t) for t in ("heavy", "light", "gold")}
    capacity, service_s = 2, 0.050
    rng = random.Random(6)
    closers: list[Callable[[], Awaitable[None]]] = []
    replicas: list[FairQueue]
    if backend == "memory":
        replicas = [MemoryFairQueue()]
    else:
        import redis.asyncio as aioredis

        from serve.fairshare.redis_queue import RedisFairQueue

        prefix = f"bench-fairshare:{uuid.uuid4().hex}:"
        replicas = []
        for _ in range(2):  # two ingress replicas, each with its own connection
            client = aioredis.Redis.from_url("redis://127.0.0.1:6379/15")
            replicas.append(RedisFairQueue(client, prefix))
            closers.append(client.aclose)
    turn = 0

    def sender(team_of: Callable[[str], str]) -> Send:
        model = f"sim-{uuid.uuid4().hex[:6]}"

        async def send(team: str) -> None:
            nonlocal turn
            turn += 1
            queue = replicas[turn % len(replicas)]
            as_team = team_of(team)
            slot = await queue.acquire(
                model, as_team, policy.weight(as_team), capacity, policy.max_wait_s
            )
            try:
                await asyncio.sleep(service_s * rng.uniform(0.8, 1.2))
            finally:
                await slot.release()

        return send

    print(
        f"\n=== simulate: {backend} FairQueue"
        f"{' (2 replicas on separate Redis clients)' if backend == 'redis' else ''}, "
        f"capacity {capacity}, service {service_s * 1000:.0f} ms +-20 %, "
        f"{seconds:g} s windows ==="
    )
    try:
        return await scenarios(
            sender(lambda team: team),
            weights,
            heavy_clients=24,
            seconds=seconds,
            warmup=1.0,
            probe_n=40,
            baseline=sender(lambda team: "everyone"),
        )
    finally:
        for queue in replicas:
            await queue.aclose()
        for close in closers:
            await close()


# -- live: the real platform ----------------------------------------------------------


KEY_ENV = {"heavy": "BENCH_KEY_HEAVY", "light": "BENCH_KEY_LIGHT", "gold": "BENCH_KEY_GOLD"}


def start_platform() -> tuple[subprocess.Popen[bytes], str, Path]:
    home = Path(tempfile.mkdtemp(prefix="raygate-fairshare-"))
    env = dict(os.environ, RAYGATE_HOME=str(home))
    env.setdefault("RAYGATE_ADMIN_KEY", "sk-bench-admin-" + secrets.token_urlsafe(16))
    for name in KEY_ENV.values():
        env.setdefault(name, "sk-bench-" + secrets.token_urlsafe(24))
        os.environ[name] = env[name]
    log = (home / "raygate.log").open("wb")
    raygate = str(ROOT / ".venv" / "bin" / "raygate")
    process = subprocess.Popen(
        [raygate, "up", "--config", str(CONFIG)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, "http://127.0.0.1:8000", home


def wait_ready(url: str, process: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"raygate up exited with {process.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s")


def stop_platform(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # raygate up stops Serve and Ray on Ctrl-C
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def configured_weights() -> dict[str, float]:
    import yaml

    args = yaml.safe_load(CONFIG.read_text())["applications"][0]["args"]
    model = next(m for m in args["models"] if m["name"] == MODEL)
    policy = model.get("fair_share", {})
    # Team weights live in the model's tenancy (fair_share.weights may add more).
    given = {**policy.get("weights", {}), **model.get("tenancy", {}).get("weights", {})}
    return {t: float(given.get(t, policy.get("default_weight", 1.0))) for t in KEY_ENV}


async def live(url: str, seconds: float) -> dict[str, Any]:
    from openai import AsyncOpenAI

    clients = {
        team: AsyncOpenAI(base_url=url + "/v1", api_key=os.environ[env], max_retries=0, timeout=120)
        for team, env in KEY_ENV.items()
    }

    async def send(team: str) -> None:
        await clients[team].chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Say hello. ({uuid.uuid4().hex[:6]})"}],
            max_tokens=8,
        )

    print(
        f"\n=== live: {url}, {MODEL} (llama.cpp, bench/fairshare.yaml), {seconds:g} s windows ==="
    )
    try:
        await send("light")  # warm both the path and the model
        return await scenarios(
            send, configured_weights(), heavy_clients=16, seconds=seconds, warmup=5.0, probe_n=30
        )
    finally:
        for client in clients.values():
            await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    sim = modes.add_parser("simulate", help="drive FairQueue directly (no Ray)")
    sim.add_argument("--backend", choices=["memory", "redis", "both"], default="both")
    sim.add_argument("--seconds", type=float, default=5.0)
    sim.add_argument("--json", type=Path, help="also write the figures here")
    run = modes.add_parser("live", help="drive a running (or started) platform")
    run.add_argument("--url", help="a platform already running bench/fairshare.yaml")
    run.add_argument("--seconds", type=float, default=30.0)
    run.add_argument("--start-timeout", type=float, default=600.0)
    run.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"mode": args.mode}
    if args.mode == "simulate":
        backends = ["memory", "redis"] if args.backend == "both" else [args.backend]
        for backend in backends:
            results[backend] = asyncio.run(simulate(backend, args.seconds))
    else:
        process = None
        url = args.url
        try:
            if url is None:
                process, url, home = start_platform()
                print(f"raygate up --config {CONFIG.relative_to(ROOT)} (log: {home}/raygate.log)")
            wait_ready(url, process, args.start_timeout)
            results["live"] = asyncio.run(live(url, args.seconds))
        finally:
            if process is not None:
                stop_platform(process)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
