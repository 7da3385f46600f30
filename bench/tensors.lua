-- wrk script: POST V2 infer requests in the binary tensor extension, the files named after `--`
-- in turn, each a whole body (JSON header, then the tensor's bytes) whose JSON is the first
-- `header_length` bytes. done() prints the same parseable line as bodies.lua.
--   wrk -t1 -c1 -d5s -s bench/tensors.lua http://127.0.0.1:PORT/v2/models/NAME/infer \
--     -- header_length body-1.bin body-2.bin ...

local prepared = {}
local count = 0
local next_index = 0

function init(args)
  local headers = {
    ["Content-Type"] = "application/octet-stream",
    ["Inference-Header-Content-Length"] = args[1],
  }
  for i = 2, #args do
    local file = assert(io.open(args[i], "rb"))
    local body = file:read("*a")
    file:close()
    count = count + 1
    prepared[count] = wrk.format("POST", nil, headers, body)
  end
  if count == 0 then
    error("no bodies given")
  end
end

function request()
  next_index = next_index % count + 1
  return prepared[next_index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "status_errors=%d socket_errors=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout))
end
