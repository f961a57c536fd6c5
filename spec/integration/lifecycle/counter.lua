-- Counts its calls in mcp.cache: shared by every worker, kept across reloads.
mcp.tool {
  name = "counter",
  description = "Adds one to a counter kept in mcp.cache and returns it.",
  inputSchema = { type = "object" },
  handler = function() return tostring(mcp.cache.incr("calls", 1, 0)) end,
}
