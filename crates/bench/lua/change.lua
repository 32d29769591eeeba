-- PUT /api/auth/users/{id} as the admin, each request toggling one user's status between
-- "disabled" and "approved" (an admin change that raises an event: user.disabled, then
-- user.enabled).
-- Usage: wrk -t1 ... -H "Authorization: Bearer TOKEN" -s change.lua http://HOST/api/auth/users -- IDS
-- IDS is a file of user ids, one per line: approved non-admin users that no other run has
-- touched (each wrk run gets a file of its own, so every user's status is known at the start:
-- a request cut off by the end of a run leaves its user in a state the next run cannot know).
--
-- The users are taken in turn, so a user is changed again only after every other user of the
-- file was: with more users than connections, no two requests in flight change one user.
--
-- One wrk thread only (the harness runs it so): wrk calls request() once on the first thread
-- before the run to check the script and never sends that request, so the first call returns
-- a PUT of "{}" (which changes nothing) and takes no user's turn.
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"

local ids = {}
local disabled = {}
local turn = 0
local checked = false

function init(args)
   for line in io.lines(args[1]) do
      if line ~= "" then
         table.insert(ids, line)
      end
   end
end

function request()
   if not checked then
      checked = true
      return wrk.format(nil, "/api/auth/users/" .. ids[1], nil, "{}")
   end
   turn = turn % #ids + 1
   local id = ids[turn]
   local status = "disabled"
   if disabled[id] then
      status = "approved"
   end
   disabled[id] = not disabled[id]
   return wrk.format(nil, "/api/auth/users/" .. id, nil, '{"status":"' .. status .. '"}')
end
