-- The unauthenticated benchmark rows: every tool is callable.
mcp.policy { tool = "*", description = "everything, to anyone (tests of the transport only)" }
