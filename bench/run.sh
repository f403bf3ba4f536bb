#!/usr/bin/env bash
# Gateway benchmark: the same wrk load against the mock upstream directly, through LiteLLM Proxy,
# and through raygate, one target at a time. See bench/README.md. Usage: bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-10}          # seconds per wrk run
WARMUP=${BENCH_WARMUP:-5}               # seconds of warm-up load per target
CONCURRENCY=${BENCH_CONCURRENCY:-"1 16 64"}
START_TIMEOUT=${BENCH_START_TIMEOUT:-240}
LITELLM_WORKERS=2
LITELLM_KEY=sk-bench-master             # = general_settings.master_key in bench/litellm.yaml
export RAYGATE_DEV_KEY=${RAYGATE_DEV_KEY:-sk-rg-bench-5f2c9a1e7b3d4068a9c1e2f3b4d5a6c7}
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
VENV=bench/.venv-litellm
OUT=bench/results
LOGS=$OUT/logs
RAW=$OUT/raw.jsonl
mkdir -p "$LOGS"
: > "$RAW"

say() { printf '\n== %s\n' "$*"; }
record() { local why=${3-}; printf '{"target":"%s","status":"%s","reason":"%s"}\n' "$1" "$2" "${why//\"/\'}" >> "$RAW"; }

# --- process handling: every service runs in its own process group, killed as a group ----------
PIDS=()
start() {  # name cmd...  -> $! is the group id (a background job in a script is no group leader)
  local name=$1; shift
  setsid "$@" > "$LOGS/$name.log" 2>&1 &
  PIDS+=("$!")
}
stop() {  # pgid
  kill -TERM -- "-$1" 2>/dev/null || return 0
  for _ in $(seq 30); do kill -0 -- "-$1" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() { for pid in "${PIDS[@]}"; do stop "$pid"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_ready() {  # pid url timeout_s -> 0 when url answers 200, 1 if the process died or time ran out
  local deadline=$((SECONDS + $3))
  while ((SECONDS < deadline)); do
    kill -0 "$1" 2>/dev/null || return 1
    curl -sf --noproxy '*' -m 2 -o /dev/null "$2" && return 0
    sleep 1
  done
  return 1
}

cpu_ticks() {  # pgid -> user+system CPU ticks of all live processes in that process group
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | sed 's/.*) //' | awk -v g="$1" '$3 == g {t += $12 + $13} END {print t + 0}'
}

bench() {  # name base_url key pgid
  local name=$1 url=$2 key=$3 pgid=$4 c t line code cpu
  code=$(curl -s --noproxy '*' -m 30 -o "$LOGS/$name.sample.json" -w '%{http_code}' "$url/v1/chat/completions" \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d '{"model":"bench-model","messages":[{"role":"user","content":"Say hi"}],"max_tokens":16}' || true)
  echo "sample request: HTTP $code $(head -c 200 "$LOGS/$name.sample.json" 2>/dev/null)"
  wrk -t2 -c16 -d"${WARMUP}s" --timeout 10s -s bench/chat.lua "$url" -- "$key" > /dev/null || true
  for c in $CONCURRENCY; do
    t=$((c < 2 ? c : 2)) cpu=$(cpu_ticks "$pgid")
    line=$(wrk -t"$t" -c"$c" -d"${DURATION}s" --timeout 10s -s bench/chat.lua "$url" -- "$key" \
      | sed -n 's/^BENCH_RESULT //p' || true)
    cpu=$(( $(cpu_ticks "$pgid") - cpu ))
    if [[ -z $line ]]; then
      kill -0 "$pgid" 2>/dev/null || { echo "$name exited; last log lines:"; tail -8 "$LOGS/$name.log"; }
      record "$name" "failed" "wrk got no result at c=$c, see $LOGS/$name.log"
      return
    fi
    echo "c=$c $line"
    printf '{"target":"%s","c":%d,"threads":%d,"cpu_s":%s,"result":%s}\n' \
      "$name" "$c" "$t" "$(awk -v n="$cpu" -v hz="$(getconf CLK_TCK)" 'BEGIN {print n / hz}')" "$line" >> "$RAW"
  done
  record "$name" "ok"
}

# --- prerequisites --------------------------------------------------------------------------------
for port in 9100 4000 8000; do
  if port_busy "$port"; then echo "port $port is already in use on 127.0.0.1; stop that server first" >&2; exit 1; fi
done
if ! command -v wrk > /dev/null; then
  say "installing wrk"
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk > /dev/null
fi
lock_sum=$(sha256sum bench/litellm-requirements.lock | cut -d' ' -f1)
if [[ ! -x $VENV/bin/litellm || $(cat "$VENV/.lock-sha256" 2>/dev/null) != "$lock_sum" ]]; then
  say "building $VENV from bench/litellm-requirements.lock (hash-checked, a few minutes)"
  rm -rf "$VENV"
  "${PYTHON:-python3.11}" -m venv "$VENV"
  "$VENV/bin/pip" install -q --require-hashes --no-deps -r bench/litellm-requirements.lock > "$LOGS/pip.log" 2>&1 \
    || { tail -20 "$LOGS/pip.log"; exit 1; }
  "$VENV/bin/pip" check
  echo "$lock_sum" > "$VENV/.lock-sha256"
fi
LITELLM_VERSION=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')

# --- mock upstream (uses the LiteLLM venv only for uvloop) and the direct baseline ----------------
start mock "$VENV/bin/python" bench/mock_upstream.py 9100
MOCK_PID=$!
wait_ready "$MOCK_PID" http://127.0.0.1:9100/health 20 || { echo "mock upstream did not start" >&2; exit 1; }
say "direct: mock upstream, no gateway"
bench direct http://127.0.0.1:9100 none "$MOCK_PID"

# --- LiteLLM Proxy ---------------------------------------------------------------------------------
say "litellm $LITELLM_VERSION: $LITELLM_WORKERS uvicorn workers on a $(nproc)-core machine"
LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=WARNING LITELLM_DONT_SHOW_FEEDBACK_BOX=true \
  start litellm "$VENV/bin/litellm" --config bench/litellm.yaml --host 127.0.0.1 --port 4000 \
  --num_workers "$LITELLM_WORKERS" --timeout_worker_healthcheck "$START_TIMEOUT"
LITELLM_PID=$!
if wait_ready "$LITELLM_PID" http://127.0.0.1:4000/health/liveliness "$START_TIMEOUT"; then
  bench litellm http://127.0.0.1:4000 "$LITELLM_KEY" "$LITELLM_PID"
else
  echo "litellm: not available; last log lines:"; tail -15 "$LOGS/litellm.log"
  record litellm "not available" "did not become ready, see $LOGS/litellm.log"
fi
stop "$LITELLM_PID"   # one gateway at a time: the other's idle CPU use must not skew the run

# --- raygate ---------------------------------------------------------------------------------------
say "raygate: .venv/bin/raygate up --config bench/raygate.yaml"
if [[ ! -x .venv/bin/raygate ]]; then
  echo "raygate: not available (no .venv/bin/raygate; run make install)"
  record raygate "not available" "no .venv/bin/raygate"
else
  rm -f bench/.raygate-bench.db
  start raygate .venv/bin/raygate up --config bench/raygate.yaml
  RAYGATE_PID=$!
  if wait_ready "$RAYGATE_PID" http://127.0.0.1:8000/readyz "$START_TIMEOUT"; then
    bench raygate http://127.0.0.1:8000 "$RAYGATE_DEV_KEY" "$RAYGATE_PID"
  else
    echo "raygate: not available; last log lines:"; tail -15 "$LOGS/raygate.log"
    record raygate "not available" "did not become ready, see $LOGS/raygate.log"
  fi
  stop "$RAYGATE_PID"
fi

# --- report ----------------------------------------------------------------------------------------
meta=$(printf '{"date":"%s","duration_s":%s,"warmup_s":%s,"concurrency":[%s],"cpus":%s,"wrk":"%s","litellm_version":"%s","litellm_workers":%s}' \
  "$(date -u +%FT%TZ)" "$DURATION" "$WARMUP" "$(echo $CONCURRENCY | tr ' ' ,)" "$(nproc)" \
  "$(wrk -v 2>&1 | head -1 | cut -d' ' -f2)" "$LITELLM_VERSION" "$LITELLM_WORKERS")
say "results (wrk threads = min(c, 2); LiteLLM with $LITELLM_WORKERS workers; everything shares $(nproc) cores)"
python3 bench/report.py "$RAW" "$OUT/latest.json" "$meta"
