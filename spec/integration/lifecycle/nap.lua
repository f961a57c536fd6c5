-- A tool that waits `ms` milliseconds without holding its worker (mcp.sleep), then answers.
mcp.tool {
  name = "nap",
  description = "Waits for the given number of milliseconds, then answers.",
  inputSchema = {
    type = "object",
    properties = { ms = { type = "integer", minimum = 0, maximum = 5000 } },
    required = { "ms" },
  },
  handler = function(args)
    mcp.sleep(args.ms / 1000)
    return "awake after " .. args.ms .. " ms"
  end,
}
