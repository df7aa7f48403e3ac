-- A cross-check of wsload's publisher with wrk (docs/performance.md):
--   wrk -t2 -c50 -d5s -s bench/wrk-publish.lua http://127.0.0.1:API_PORT/api/v1/messages
--   wrk -t2 -c50 -d5s -s bench/wrk-publish.lua http://127.0.0.1:NCHAN_PORT/pub/t0
-- Every request publishes one 64-byte message to topic t0.
wrk.method = "POST"
local content = string.rep("x", 64)
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"topic":"t0","content":"' .. content .. '"}'

function init(args)
  -- nchan's /pub/T takes the raw body
  if string.find(wrk.path or "", "/pub/") then
    wrk.headers["Content-Type"] = "text/plain"
    wrk.body = content
  end
end
-- wrk itself reports "Non-2xx or 3xx responses" when there are any.
