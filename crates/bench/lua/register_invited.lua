-- POST /api/auth/register with a fresh email and an invitation code on every request.
-- Usage: wrk ... -s register_invited.lua http://HOST/api/auth/register -- PREFIX CODE...
-- Emails as register.lua's. The codes (invitations of many uses each) are taken in turn,
-- each thread starting at another one, so the registrations spread over them evenly, as
-- a team's shared invitations would be.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local next_thread = 0

function setup(thread)
   thread:set("thread_id", next_thread)
   next_thread = next_thread + 1
end

local prefix = "bench"
local codes = {}
local counter = 0

function init(args)
   prefix = args[1] or prefix
   for i = 2, #args do
      codes[#codes + 1] = args[i]
   end
end

function request()
   counter = counter + 1
   local code = codes[((thread_id or 0) * 7 + counter) % #codes + 1] or ""
   local body = string.format(
      '{"email":"%s-%d-%d@invited.bench.example.com","password":"bench register password","invitation":"%s"}',
      prefix, thread_id or 0, counter, code)
   return wrk.format(nil, nil, nil, body)
end
