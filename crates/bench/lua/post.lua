-- POST with an empty body (a passkey login's start).
-- Usage: wrk ... -s post.lua URL
wrk.method = "POST"
