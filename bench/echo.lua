-- wrk script: tools/call of echo with a unique JSON-RPC id per request.
-- LUAMCP_SESSION: an Mcp-Session-Id to send. LUAMCP_TOKENS: a file of bearer tokens, one per
-- line, used in turn (one token = a reused token; many with the server's cache off = a fresh
-- verification per request).
local n = 0
local tokens, next_token = {}, 1
local headers = {
  ["Content-Type"] = "application/json",
  ["Accept"] = "application/json, text/event-stream",
  ["Mcp-Session-Id"] = os.getenv("LUAMCP_SESSION"),
}

function init(args)
  local path = os.getenv("LUAMCP_TOKENS")
  if path then
    for line in io.lines(path) do
      if #line > 0 then tokens[#tokens + 1] = line end
    end
    next_token = math.random(#tokens)
  end
end

request = function()
  n = n + 1
  if #tokens > 0 then
    headers["Authorization"] = "Bearer " .. tokens[next_token]
    next_token = next_token % #tokens + 1
  end
  return wrk.format("POST", "/mcp", headers,
    '{"jsonrpc":"2.0","id":' .. n .. ',"method":"tools/call",' ..
    '"params":{"name":"echo","arguments":{"text":"hello, world"}}}')
end
