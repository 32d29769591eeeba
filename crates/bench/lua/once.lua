-- POST a JSON body per request, each line of the thread's file sent once: requests that a
-- server accepts only once (a login's second step, a passkey login's finish).
-- Usage: wrk ... -s once.lua URL -- PREFIX
-- Thread T reads PREFIX-T.txt: one JSON body per line.
--
-- A body leaves the queue when it is sent and never comes back. wrk's own check of the
-- script calls request() once on the first thread before the run and never sends that
-- request: that body is left out, nothing more. With more bodies than the run sends the
-- queue never runs dry; if it does, the request sent instead spends nothing (`{}`, which
-- the server refuses before it looks anything up), wrk counts it as a non-2xx response,
-- and done() prints how often (lines starting "script:", which the harness keeps with the
-- report).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
   thread:set("thread_id", #threads)
   table.insert(threads, thread)
end

-- Globals, so that done() can read them through thread:get().
bodies = 0   -- bodies read from the file
taken = 0    -- bodies taken from the queue (each sent at most once)
accepted = 0 -- 200s
refused = 0  -- other answers
dry = 0      -- requests made while the queue was empty

local queue = {}
local first, last = 1, 0
local empty = nil

function init(args)
   local path = string.format("%s-%d.txt", args[1], thread_id or 0)
   for line in io.lines(path) do
      if line ~= "" then
         last = last + 1
         queue[last] = line
      end
   end
   bodies = last
   empty = wrk.format(nil, nil, nil, "{}")
end

function request()
   if first > last then
      dry = dry + 1
      return empty
   end
   local body = queue[first]
   queue[first] = nil
   first = first + 1
   taken = taken + 1
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   if status == 200 then
      accepted = accepted + 1
   else
      refused = refused + 1
   end
end

function done(summary, latency, requests)
   for _, thread in ipairs(threads) do
      io.write(string.format(
         "script: thread %d: %d bodies, %d taken, %d accepted, %d refused, queue empty %d times\n",
         thread:get("thread_id"), thread:get("bodies"), thread:get("taken"),
         thread:get("accepted"), thread:get("refused"), thread:get("dry")))
   end
end
