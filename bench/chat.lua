-- wrk script: POST /v1/chat/completions (non-stream) with a bearer key.
-- Key: first script arg (`wrk ... -s chat.lua URL -- KEY`) or env BENCH_KEY.
-- done() prints one line: BENCH_RESULT {json} (latencies in ms; non2xx counts
-- every response outside 200-299, socket_errors counts connect/read/write/timeout).
-- BENCH_MODEL names the model; BENCH_MODE "hit" asks for a cacheable answer (temperature 0,
-- the same request every time: after the first, exact-cache hits), "miss" the same request
-- with `x-raygate-cache: bypass` (the cache is not read: every request calls the upstream).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local key = args[1] or os.getenv("BENCH_KEY") or "sk-none"
  local model = os.getenv("BENCH_MODEL") or "bench-model"
  wrk.method = "POST"
  wrk.path = "/v1/chat/completions"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. key
  local mode = os.getenv("BENCH_MODE") or ""
  local sampling = ""
  if mode == "hit" or mode == "miss" then sampling = ',"temperature":0' end
  if mode == "miss" then wrk.headers["x-raygate-cache"] = "bypass" end
  wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"Say hi"}],"max_tokens":16'
    .. sampling .. '}'
  non2xx = 0
  first_bad = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_bad == 0 then first_bad = status end
  end
end

function done(summary, latency, requests)
  local non2xx, first_bad = 0, 0
  for _, t in ipairs(threads) do
    non2xx = non2xx + t:get("non2xx")
    if first_bad == 0 then first_bad = t:get("first_bad") end
  end
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,'
      .. '"p99_ms":%.3f,"max_ms":%.3f,"non2xx":%d,"first_non2xx_status":%d,"socket_errors":%d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    non2xx, first_bad, e.connect + e.read + e.write + e.timeout))
end
