-- wrk script: tools/call of echo. LUAMCP_SESSION: an Mcp-Session-Id to send. LUAMCP_TOKENS: a
-- file of bearer tokens, one per line. With one token (or none) every request is the same,
-- prepared once: the client spends its CPU on sending, not on building requests, so more of
-- the machine is left to the server it measures (a stateless server does not care that the
-- JSON-RPC id repeats). With many tokens (the server's cache off: a signature verified per
-- request) each request takes the next token, built by this script.
local body = '{"jsonrpc":"2.0","id":1,"method":"tools/call",' ..
    '"params":{"name":"echo","arguments":{"text":"hello, world"}}}'
local tokens = {}
if os.getenv("LUAMCP_TOKENS") then
  for line in io.lines(os.getenv("LUAMCP_TOKENS")) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
end

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Mcp-Session-Id"] = os.getenv("LUAMCP_SESSION")
wrk.headers["Authorization"] = tokens[1] and "Bearer " .. tokens[1]

if #tokens > 1 then
  local next_token, n = 1, 0
  function init(args) next_token = math.random(#tokens) end
  request = function()
    n = n + 1
    wrk.headers["Authorization"] = "Bearer " .. tokens[next_token]
    next_token = next_token % #tokens + 1
    return wrk.format(nil, nil, nil, body:gsub('"id":1', '"id":' .. n, 1))
  end
end
