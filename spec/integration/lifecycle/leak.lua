-- Tries to leak the API_KEY secret every way a script can: log, error, error result.
mcp.tool {
  name = "leak",
  description = "Puts a secret into a log line, an error or an error result.",
  inputSchema = { type = "object", properties = { how = { enum = { "log", "error", "result", "length" } } },
                  required = { "how" } },
  secrets = { "API_KEY" },
  handler = function(args, ctx)
    local key = assert(mcp.secret("API_KEY"))
    if args.how == "log" then
      mcp.log("notice", "the key is " .. key)
      ctx.log("notice", "again " .. key)
      return "logged"
    elseif args.how == "error" then
      error("failed with " .. key)
    elseif args.how == "result" then
      return nil, "refused, key " .. key .. " rejected"
    end
    return tostring(#key)
  end,
}
