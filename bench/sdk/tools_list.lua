-- wrk script: tools/list with a unique JSON-RPC id per request, as ../tools_list.lua, plus a
-- bearer token from LUAMCP_TOKENS (a file of tokens, one per line, used in turn) and the
-- Accept header the Streamable HTTP transport requires (the SDK answers 406 without
-- text/event-stream in it).
local n = 0
local tokens, next_token = {}, 1
local headers = {
  ["Content-Type"] = "application/json",
  ["Accept"] = "application/json, text/event-stream",
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
    '{"jsonrpc":"2.0","id":' .. n .. ',"method":"tools/list"}')
end
