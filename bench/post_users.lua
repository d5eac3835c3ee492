-- wrk script for POST /users: every request creates a user with a username never used before.
-- Usage: wrk ... -s bench/post_users.lua <url> -- <run-prefix>
-- The prefix (unique per wrk invocation) plus the thread number plus a per-thread counter
-- makes each username unique across warm-up, measurement and repeated runs on one database.
-- The Authorization header comes from wrk's -H option.

local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_id", next_thread)
end

local prefix = "bench"
local counter = 0

function init(args)
  if args[1] ~= nil then
    prefix = args[1]
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"username":"%s-t%d-%d","fullName":"Bench User"}', prefix, thread_id, counter
  )
  return wrk.format("POST", nil, nil, body)
end
