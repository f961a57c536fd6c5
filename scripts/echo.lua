-- echo: the smallest useful tool, for checking that a client can list and call tools.

mcp.tool {
  name = "echo",
  title = "Echo",
  description = "Returns the given text unchanged. Useful for checking that a client can reach "
    .. "the server and call a tool.",
  inputSchema = {
    type = "object",
    properties = {
      text = { type = "string", description = "The text to send back." },
    },
    required = { "text" },
    additionalProperties = false,
  },
  annotations = { readOnlyHint = true, idempotentHint = true, openWorldHint = false },
  handler = function(args)
    return args.text
  end,
}
