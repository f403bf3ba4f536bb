"""Turn bench/run.sh's raw JSONL into a table, ratios and bench/results/latest.json.

Usage: python3 bench/report.py RAW.jsonl OUT.json META_JSON
Raw lines: {"target", "c", "threads", "cpu_s", "result": <chat.lua BENCH_RESULT>} or
{"target", "status", "reason"}. cpu_s: CPU time the target's own processes used during the run.
"""

import json
import sys

TARGETS = ("direct", "litellm", "raygate")
# Side-by-side pairs (numerator, denominator, what the ratio says), each measured on the
# same machine in the same run of bench/run.sh.
PAIRS = (
    ("raygate", "litellm", "raygate / LiteLLM, OpenAI-compatible upstream"),
    ("raygate-bedrock", "litellm-bedrock", "raygate / LiteLLM, Bedrock Converse adapter (SigV4)"),
    ("raygate-cache-hit", "raygate-cache-miss", "raygate exact-cache hit / the same request calling the upstream"),
    ("raygate-deployment", "raygate", "provider in its own deployment / provider in the ingress"),
)


def main(raw_path: str, out_path: str, meta: str) -> None:
    targets: dict[str, dict] = {t: {"status": "not run", "runs": []} for t in TARGETS}
    with open(raw_path) as f:
        for line in f:
            rec = json.loads(line)
            t = targets.setdefault(rec["target"], {"status": "not run", "runs": []})
            if "status" in rec:
                t["status"], t["reason"] = rec["status"], rec.get("reason", "")
                continue
            r = rec["result"]
            errors = r["non2xx"] + r["socket_errors"]
            t["runs"].append(
                {
                    "c": rec["c"],
                    "threads": rec["threads"],
                    # Goodput: only 2xx responses count, so a gateway answering errors fast can't look good.
                    "rps": round((r["requests"] - r["non2xx"]) / r["duration_s"], 1),
                    "p50_ms": r["p50_ms"],
                    "p90_ms": r["p90_ms"],
                    "p99_ms": r["p99_ms"],
                    "cpu_ms_per_req": round(rec["cpu_s"] * 1000 / max(r["requests"], 1), 3),
                    "requests": r["requests"],
                    "non2xx": r["non2xx"],
                    "first_non2xx_status": r["first_non2xx_status"],
                    "socket_errors": r["socket_errors"],
                    "errors": errors,
                }
            )

    print(
        f"\n{'target':<18} {'c':>3} {'req/s (2xx)':>12} {'p50 ms':>9} {'p99 ms':>9} {'cpu ms/req':>10}  errors"
    )
    for name, t in targets.items():
        if not t["runs"]:
            print(
                f"{name:<18}   -  {name}: {t['status']}"
                + (f" ({t['reason']})" if t.get("reason") else "")
            )
        for r in t["runs"]:
            err = str(r["errors"])
            if r["non2xx"]:
                err += f" (non-2xx {r['non2xx']}, e.g. HTTP {r['first_non2xx_status']})"
            if r["socket_errors"]:
                err += f" (socket {r['socket_errors']})"
            print(
                f"{name:<18} {r['c']:>3} {r['rps']:>12.1f} {r['p50_ms']:>9.2f} {r['p99_ms']:>9.2f} {r['cpu_ms_per_req']:>10.3f}  {err}"
            )

    def run(name: str, c: int) -> dict | None:
        return next((r for r in targets[name]["runs"] if r["c"] == c), None)

    ratios: dict = {"pairs": {}, "added_p50_ms_c1": {}}
    for num, den, what in PAIRS:
        if not targets.get(num, {}).get("runs") or not targets.get(den, {}).get("runs"):
            continue
        pair: dict = {"what": what, "rps": {}, "cpu_per_req": {}}
        print(f"\n{what}: throughput (>1 = {num} serves more), CPU per request, p50:")
        for r in targets[den]["runs"]:
            g = run(num, r["c"])
            if not g or not r["rps"]:
                continue
            cpu = g["cpu_ms_per_req"] / r["cpu_ms_per_req"] if r["cpu_ms_per_req"] else float("nan")
            pair["rps"][str(r["c"])] = round(g["rps"] / r["rps"], 3)
            pair["cpu_per_req"][str(r["c"])] = round(cpu, 3)
            p50 = g["p50_ms"] / r["p50_ms"] if r["p50_ms"] else float("nan")
            flag = "  (!) errors in this run" if g["errors"] or r["errors"] else ""
            print(f"  c={r['c']:<3} throughput {g['rps'] / r['rps']:.2f}x, CPU/request {cpu:.2f}x, p50 {p50:.2f}x{flag}")
            if r["c"] == 1:
                pair["p50_c1"] = round(p50, 3)
        ratios["pairs"][f"{num}/{den}"] = pair

    base = run("direct", 1)
    print("\nadded p50 latency at c=1 (gateway p50 - direct p50, OpenAI-compatible upstream):")
    for name in ("litellm", "raygate"):
        g = run(name, 1)
        if base and g:
            ratios["added_p50_ms_c1"][name] = round(g["p50_ms"] - base["p50_ms"], 3)
            print(f"  {name:<8} {g['p50_ms'] - base['p50_ms']:8.2f} ms")
        else:
            print(f"  {name:<8}      n/a ({targets[name]['status']})")
    added = ratios["added_p50_ms_c1"]
    if "litellm" in added and "raygate" in added and added["litellm"] > 0:
        ratios["added_p50_raygate_over_litellm"] = round(added["raygate"] / added["litellm"], 3)
        print(
            f"  raygate/LiteLLM added-p50 ratio: {added['raygate'] / added['litellm']:.2f} (<1 = raygate adds less)"
        )

    with open(out_path, "w") as f:
        json.dump({"meta": json.loads(meta), "targets": targets, "ratios": ratios}, f, indent=2)
        f.write("\n")
    print(f"\nwrote {out_path}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
