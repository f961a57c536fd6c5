-- wrk script: tools/list as ../tools_list.lua, plus the first bearer token of LUAMCP_TOKENS and
-- the Accept header the Streamable HTTP transport requires (the SDK answers 406 without
-- text/event-stream in it). The same request every time, prepared once.
wrk.method = "POST"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
if os.getenv("LUAMCP_TOKENS") then
  for line in io.lines(os.getenv("LUAMCP_TOKENS")) do
    if #line > 0 then wrk.headers["Authorization"] = "Bearer " .. line break end
  end
end
