-- A tool that takes about `ms` milliseconds of CPU, to have a request in flight.
mcp.tool {
  name = "slow",
  description = "Spins for the given number of milliseconds, then answers.",
  inputSchema = {
    type = "object",
    properties = { ms = { type = "integer", minimum = 0, maximum = 5000 } },
    required = { "ms" },
  },
  handler = function(args)
    local stop = mcp.monotonic_ms() + args.ms
    while mcp.monotonic_ms() < stop do end
    return "done after " .. args.ms .. " ms"
  end,
}
