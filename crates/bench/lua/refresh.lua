-- POST /api/auth/token with the refresh grant (a form), every refresh token sent once.
-- Usage: wrk ... -s refresh.lua http://HOST/api/auth/token -- TOKENS
-- Thread T reads TOKENS-T.txt: one refresh token per line, each of its own session (a login
-- of the harness's), none sent before, no two threads sharing one.
--
-- Each thread keeps a queue of its sessions' current tokens: request() takes the oldest and
-- sends it, response() puts the next token of that session (from a 200's body) at the back.
-- A token leaves the queue when it is sent and never comes back, so no token is sent twice:
-- a spent token sent again would end its session (reuse detection). Responses on a thread's
-- connections may come back in any order; the queue does not care. A token whose answer is
-- never read (a timeout, the end of the run, or wrk's own check of the script: it calls
-- request() once on the first thread before the run and never sends that request) takes its
-- session out of the run, nothing more.
--
-- With more sessions per thread than connections the queue never runs dry. If it does, the
-- request sent instead spends nothing: a refresh with an empty token (400 invalid_request,
-- answered before any session is looked up), which wrk counts as a non-2xx response; done()
-- prints how often (lines starting "script:", which the harness keeps with the report).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

local threads = {}

function setup(thread)
   thread:set("thread_id", #threads)
   table.insert(threads, thread)
end

-- Globals, so that done() can read them through thread:get().
sessions = 0 -- tokens read from the file
taken = 0    -- tokens taken from the queue (each sent at most once)
renewed = 0  -- 200s whose next token went back into the queue
refused = 0  -- answers without a next token (non-200, or no refresh_token in the body)
dry = 0      -- requests made while the queue was empty (no token sent)

local queue = {}
local first, last = 1, 0

local function push(token)
   last = last + 1
   queue[last] = token
end

local function encode(text)
   return (text:gsub("[^%w%-%._~]", function(c)
      return string.format("%%%02X", string.byte(c))
   end))
end

local empty = nil

function init(args)
   local path = string.format("%s-%d.txt", args[1], thread_id or 0)
   for line in io.lines(path) do
      if line ~= "" then
         push(line)
      end
   end
   sessions = last
   empty = wrk.format(nil, nil, nil, "grant_type=refresh_token&refresh_token=")
end

function request()
   if first > last then
      dry = dry + 1
      return empty
   end
   local token = queue[first]
   queue[first] = nil
   first = first + 1
   taken = taken + 1
   return wrk.format(nil, nil, nil, "grant_type=refresh_token&refresh_token=" .. encode(token))
end

function response(status, headers, body)
   if status == 200 then
      local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
      if token then
         push(token)
         renewed = renewed + 1
         return
      end
   end
   refused = refused + 1
end

function done(summary, latency, requests)
   for _, thread in ipairs(threads) do
      io.write(string.format(
         "script: thread %d: %d sessions, %d tokens taken, %d renewed, %d answers without a next token, queue empty %d times\n",
         thread:get("thread_id"), thread:get("sessions"), thread:get("taken"),
         thread:get("renewed"), thread:get("refused"), thread:get("dry")))
   end
end
