-- POST /api/auth/login with the OAuth2 password form, taking N accounts in turn.
-- Usage: wrk ... -s login.lua http://HOST/api/auth/login -- N EMAIL_PATTERN PASSWORD
-- EMAIL_PATTERN is a string.format pattern given the account's number 0..N-1
-- (e.g. login%03d@login.bench.example.com; with N=1 a plain email works too).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

local function encode(text)
   return (text:gsub("[^%w%-%._~]", function(c)
      return string.format("%%%02X", string.byte(c))
   end))
end

local requests = {}
local counter = 0

function init(args)
   local accounts = tonumber(args[1]) or 1
   local pattern = args[2]
   local password = encode(args[3])
   for n = 0, accounts - 1 do
      local body = "username=" .. encode(string.format(pattern, n)) .. "&password=" .. password
      requests[n + 1] = wrk.format(nil, nil, nil, body)
   end
end

function request()
   counter = counter % #requests + 1
   return requests[counter]
end
