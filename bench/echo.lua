-- wrk script: tools/call of echo with a unique JSON-RPC id per request.
local n = 0
local headers = {
  ["Content-Type"] = "application/json",
  ["Accept"] = "application/json, text/event-stream",
  ["Mcp-Session-Id"] = os.getenv("LUAMCP_SESSION"),
}
request = function()
  n = n + 1
  return wrk.format("POST", "/mcp", headers,
    '{"jsonrpc":"2.0","id":' .. n .. ',"method":"tools/call",' ..
    '"params":{"name":"echo","arguments":{"text":"hello, world"}}}')
end
