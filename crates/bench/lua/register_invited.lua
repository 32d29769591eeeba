-- POST /api/auth/register with a fresh email and a fresh one-use invitation code on every
-- request. Usage: wrk ... -s register_invited.lua http://HOST/api/auth/register -- PREFIX CODES
-- Emails as register.lua's. CODES is a file of codes, one per line, none used before:
-- thread T takes lines T+1, T+1+THREADS, ... so no two requests share a code.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
   thread:set("thread_id", #threads)
   table.insert(threads, thread)
end

local prefix = "bench"
local codes = {}
local counter = 0

function init(args)
   prefix = args[1] or prefix
   for line in io.lines(args[2]) do
      codes[#codes + 1] = line
   end
end

function request()
   counter = counter + 1
   local stride = thread_count or 1
   local code = codes[(counter - 1) * stride + (thread_id or 0) + 1] or "used-up"
   local body = string.format(
      '{"email":"%s-%d-%d@invited.bench.example.com","password":"bench register password","invitation":"%s"}',
      prefix, thread_id or 0, counter, code)
   return wrk.format(nil, nil, nil, body)
end
