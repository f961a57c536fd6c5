-- The transport tests run without authentication: every fixture tool is callable.
mcp.policy { tool = "*", description = "everything, to anyone (tests of the transport only)" }
