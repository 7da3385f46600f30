-- wrk script: POST the JSON bodies of the file named after `--`, one body per line, in turn,
-- so no cache can serve a repeated body. done() prints one parseable line of results.
--   wrk -t1 -c16 -d5s -s bench/bodies.lua http://127.0.0.1:PORT/predict -- bodies.jsonl [close]
-- With "close", every request asks for Connection: close (a new connection each time).

local prepared = {}
local count = 0
local next_index = 0

function init(args)
  local headers = {["Content-Type"] = "application/json"}
  if args[2] == "close" then
    headers["Connection"] = "close"
  end
  for line in io.lines(args[1]) do
    count = count + 1
    prepared[count] = wrk.format("POST", nil, headers, line)
  end
  if count == 0 then
    error("no bodies in " .. args[1])
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
