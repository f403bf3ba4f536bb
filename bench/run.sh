#!/usr/bin/env bash
# Gateway benchmark: the same wrk load against the mock upstream directly, through LiteLLM Proxy,
# and through raygate, one gateway at a time. See bench/README.md. Usage: bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-10}          # seconds per wrk run
WARMUP=${BENCH_WARMUP:-5}               # seconds of warm-up load per target
CONCURRENCY=${BENCH_CONCURRENCY:-"1 16 64"}
START_TIMEOUT=${BENCH_START_TIMEOUT:-240}
TARGETS=${BENCH_TARGETS:-"direct litellm raygate raygate-deployment"}   # which targets to measure
RAYGATE_CONFIG=${BENCH_RAYGATE_CONFIG:-bench/raygate.yaml}
# Static credentials for the fake Bedrock (bench/fake_bedrock_server.py): both gateways sign
# with them through their own SigV4 code (raygate: botocore's chain; LiteLLM: its own).
export AWS_ACCESS_KEY_ID=AKIDRAYGATEFAKE00001 AWS_SECRET_ACCESS_KEY=fake/secret+key/for/raygate/tests/0000
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
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

# --- processes: each service leads its own session (Ray gives its workers their own process
# groups, but they stay in the session); stop/cleanup end the whole session --------------------
SIDS=()
start() {  # name cmd...; then $! = session id (a background job of a script is no group leader)
  local name=$1; shift
  setsid "$@" > "$LOGS/$name.log" 2>&1 &
  SIDS+=("$!")
}
alive() { local s; s=$(ps -o stat= -p "$1") && [[ $s != Z* ]]; }
session_pids() { ps -e -o pid=,sid=,stat= | awk -v s="$1" '$2 == s && $3 !~ /^Z/ {print $1}'; }
stop() {  # sid: ask the leader to stop (graceful), then kill what is left of its session
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 60); do [[ -z $(session_pids "$1") ]] && break; sleep 0.5; done
  local left; left=$(session_pids "$1")
  # shellcheck disable=SC2086  # one pid per word
  if [[ -n $left ]]; then kill -KILL $left 2>/dev/null || true; fi
  wait "$1" 2>/dev/null || true
}
cleanup() { for sid in "${SIDS[@]}"; do stop "$sid"; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
owns_port() {  # port sid -> 0 if a process of that session listens on the port
  command -v ss > /dev/null || return 0
  local pid
  for pid in $(ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | cut -d= -f2); do
    [[ $(ps -o sid= -p "$pid" | tr -d ' ') == "$2" ]] && return 0
  done
  return 1
}
wait_ready() {  # sid port path timeout_s -> 0 once our own service answers 200 there
  local deadline=$((SECONDS + $4))
  while ((SECONDS < deadline)); do
    alive "$1" || return 1
    if curl -sf --noproxy '*' -m 2 -o /dev/null "http://127.0.0.1:$2$3"; then
      owns_port "$2" "$1" && return 0
      echo "port $2 answers, but not from a process this script started" >&2
      return 1
    fi
    sleep 1
  done
  return 1
}
cpu_ticks() {  # sid -> user+system CPU ticks of the live processes of that session
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | sed 's/.*) //' | awk -v s="$1" '$4 == s {t += $12 + $13} END {print t + 0}'
}

bench() {  # name port key sid: sample request, warm-up, then one wrk run per concurrency
  # (BENCH_MODEL / BENCH_MODE from the environment pick the model and cache mode, see chat.lua)
  local name=$1 url=http://127.0.0.1:$2 key=$3 sid=$4 c t line code cpu
  code=$(curl -s --noproxy '*' -m 30 -o "$LOGS/$name.sample.json" -w '%{http_code}' "$url/v1/chat/completions" \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d '{"model":"'"${BENCH_MODEL:-bench-model}"'","messages":[{"role":"user","content":"Say hi"}],"max_tokens":16}' || true)
  echo "sample request: HTTP $code $(head -c 200 "$LOGS/$name.sample.json" 2>/dev/null)"
  wrk -t2 -c16 -d"${WARMUP}s" --timeout 10s -s bench/chat.lua "$url" -- "$key" > /dev/null || true
  for c in $CONCURRENCY; do
    t=$((c < 2 ? c : 2)) cpu=$(cpu_ticks "$sid")
    line=$(wrk -t"$t" -c"$c" -d"${DURATION}s" --timeout 10s -s bench/chat.lua "$url" -- "$key" \
      | sed -n 's/^BENCH_RESULT //p' || true)
    cpu=$(($(cpu_ticks "$sid") - cpu))
    if [[ -z $line ]]; then
      alive "$sid" || { echo "$name exited; last log lines:"; tail -8 "$LOGS/$name.log"; }
      record "$name" "failed" "wrk got no result at c=$c, see $LOGS/$name.log"
      return
    fi
    echo "c=$c $line"
    printf '{"target":"%s","c":%d,"threads":%d,"cpu_s":%s,"result":%s}\n' \
      "$name" "$c" "$t" "$(awk -v n="$cpu" -v hz="$(getconf CLK_TCK)" 'BEGIN {print n / hz}')" "$line" >> "$RAW"
  done
  record "$name" "ok"
}

gateway() {  # name port ready_path key cmd...: start, wait until ready, bench, stop
  # $VARIANTS: "label:model:mode ..." to measure several paths on one running gateway
  local name=$1 port=$2 path=$3 key=$4 sid v label model mode; shift 4
  if port_busy "$port"; then
    echo "$name: not available (port $port is already in use)"
    record "$name" "not available" "port $port already in use"
    return
  fi
  start "$name" "$@"
  sid=$!
  if wait_ready "$sid" "$port" "$path" "$START_TIMEOUT"; then
    for v in ${VARIANTS:-$name:bench-model:}; do
      IFS=: read -r label model mode <<< "$v"
      say "$label: model $model${mode:+, cache $mode}"
      BENCH_MODEL=$model BENCH_MODE=$mode bench "$label" "$port" "$key" "$sid"
    done
  else
    echo "$name: not available; last log lines:"; tail -15 "$LOGS/$name.log"
    record "$name" "not available" "not ready on :$port$path, see $LOGS/$name.log"
  fi
  stop "$sid"  # one gateway at a time: its idle CPU use must not skew the next one
}

# --- prerequisites --------------------------------------------------------------------------------
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

# --- mock upstream (run with the LiteLLM venv only for its uvloop) and the direct baseline -------
if port_busy 9100; then echo "port 9100 is already in use; stop that server first" >&2; exit 1; fi
start mock "$VENV/bin/python" bench/mock_upstream.py 9100
MOCK_SID=$!
wait_ready "$MOCK_SID" 9100 /health 20 || { echo "mock upstream did not start" >&2; exit 1; }
if port_busy 9200; then echo "port 9200 is already in use; stop that server first" >&2; exit 1; fi
start bedrock .venv/bin/python bench/fake_bedrock_server.py 9200
wait_ready "$!" 9200 /health 30 || { echo "fake bedrock did not start" >&2; exit 1; }
wants() { [[ " $TARGETS " == *" $1 "* ]]; }
if wants direct; then
  say "direct: mock upstream, no gateway"
  bench direct 9100 none "$MOCK_SID"
fi

if wants litellm; then
  say "litellm $LITELLM_VERSION: $LITELLM_WORKERS uvicorn workers on a $(nproc)-core machine"
  LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=WARNING LITELLM_DONT_SHOW_FEEDBACK_BOX=true \
    VARIANTS="litellm:bench-model: litellm-bedrock:bench-bedrock:" \
    gateway litellm 4000 /health/liveliness "$LITELLM_KEY" \
    "$VENV/bin/litellm" --config bench/litellm.yaml --host 127.0.0.1 --port 4000 \
    --num_workers "$LITELLM_WORKERS" --timeout_worker_healthcheck "$START_TIMEOUT"
fi

if ! wants raygate; then
  :
elif [[ -x .venv/bin/raygate ]]; then
  say "raygate: .venv/bin/raygate up --config $RAYGATE_CONFIG"
  rm -f bench/.raygate-bench.db
  VARIANTS="raygate:bench-model: raygate-bedrock:bench-bedrock: raygate-cache-miss:bench-model:miss raygate-cache-hit:bench-model:hit" \
    gateway raygate 8000 /readyz "$RAYGATE_DEV_KEY" .venv/bin/raygate up --config "$RAYGATE_CONFIG"
else
  echo "raygate: not available (no .venv/bin/raygate; run make install)"
  record raygate "not available" "no .venv/bin/raygate"
fi

if wants raygate-deployment && [[ -x .venv/bin/raygate ]]; then
  say "raygate, provider in its own deployment: bench/raygate-provider-deployment.yaml"
  rm -f bench/.raygate-bench.db
  gateway raygate-deployment 8000 /readyz "$RAYGATE_DEV_KEY" \
    .venv/bin/raygate up --config bench/raygate-provider-deployment.yaml
fi

# --- report ----------------------------------------------------------------------------------------
meta=$(printf '{"date":"%s","duration_s":%s,"warmup_s":%s,"concurrency":[%s],"cpus":%s,"wrk":"%s","litellm_version":"%s","litellm_workers":%s}' \
  "$(date -u +%FT%TZ)" "$DURATION" "$WARMUP" "$(echo "$CONCURRENCY" | xargs | tr ' ' ,)" "$(nproc)" \
  "$(wrk -v 2>&1 | head -1 | cut -d' ' -f2)" "$LITELLM_VERSION" "$LITELLM_WORKERS")
say "results (wrk threads = min(c, 2); LiteLLM with $LITELLM_WORKERS workers; everything shares $(nproc) cores)"
python3 bench/report.py "$RAW" "$OUT/latest.json" "$meta"
