-- Refresh chains: every request sends a refresh token that a previous response returned.
-- BENCH_TOKENS_FILE holds the seeds, one token per line, one per connection; setup() deals
-- them out to the threads (thread k of n gets lines k, k+n, ...), so no two threads share a
-- chain. Each thread keeps a queue: request() takes a token, response() puts back the
-- successor from the JSON body. A token is therefore sent exactly once; a second use would
-- revoke the session (reuse detection) and show as 401s. A connection that finds the queue
-- empty (a chain broke: an error response carries no token) sends an empty token, which is
-- refused and counted as an error rather than hidden.
require("report")

local seeds = {}
for line in io.lines(os.getenv("BENCH_TOKENS_FILE")) do
  if line ~= "" then seeds[#seeds + 1] = line end
end

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
  -- Each thread reads the seed file itself; it only needs to know which lines are its own.
  thread:set("thread_number", #threads)
end

-- In each thread: pick this thread's seeds once wrk has told it its number and the count.
local queue = {}
local ready = false
local thread_count = tonumber(os.getenv("BENCH_THREADS"))

local function take_seeds()
  for i = thread_number, #seeds, thread_count do
    queue[#queue + 1] = seeds[i]
  end
  ready = true
end

-- wrk calls request() once in the first thread before any connection opens, only to check
-- what it returns (script_verify_request in wrk.c, wrk 4). Spending a seed there would leave
-- that thread a token short and break a chain, so that call gets a dummy.
local checked = false

function request()
  if not ready then take_seeds() end
  local token
  if thread_number == 1 and not checked then
    checked = true
    token = "not-sent"
  else
    token = table.remove(queue, 1) or ""
  end
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json" },
    '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  local token = body and string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
  if token then queue[#queue + 1] = token end
end
