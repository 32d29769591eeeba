-- POST /api/auth/register with a fresh email on every request.
-- Usage: wrk ... -s register.lua http://HOST/api/auth/register -- PREFIX
-- Emails are PREFIX-THREAD-N@register.bench.example.com: PREFIX differs per wrk run, THREAD
-- per wrk thread, N counts the thread's requests, so no two requests share an email.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local next_thread = 0

function setup(thread)
   thread:set("thread_id", next_thread)
   next_thread = next_thread + 1
end

local prefix = "bench"
local counter = 0

function init(args)
   prefix = args[1] or prefix
end

function request()
   counter = counter + 1
   local body = string.format(
      '{"email":"%s-%d-%d@register.bench.example.com","password":"bench register password"}',
      prefix, thread_id or 0, counter)
   return wrk.format(nil, nil, nil, body)
end
