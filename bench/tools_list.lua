-- wrk script: tools/list with a unique JSON-RPC id per request.
local n = 0
local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
request = function()
  n = n + 1
  return wrk.format("POST", "/mcp", headers,
    '{"jsonrpc":"2.0","id":' .. n .. ',"method":"tools/list"}')
end
