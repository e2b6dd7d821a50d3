-- Signup with a username no other request of the run uses: the run's tag (BENCH_RUN, set per
-- wrk run by benches/run.mjs), the thread's number and a per-thread counter. A repeated
-- username would be a 409 and show as errors.
require("report")

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local counter = 0
local run = os.getenv("BENCH_RUN")
local password = os.getenv("BENCH_PASSWORD")

function request()
  counter = counter + 1
  local body = string.format('{"username":"b%s_%d_%d","password":"%s"}', run, thread_id, counter, password)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
