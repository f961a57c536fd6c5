-- The conformance suite runs without authentication: everything it uses is open to it.
mcp.policy { tool = "*", description = "every conformance tool" }
mcp.policy { prompt = "*", description = "every conformance prompt" }
mcp.policy { resource = "test://*", description = "every conformance resource" }
