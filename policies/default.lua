-- Who may call the demo tools of scripts/. Deny by default: a tool that no rule matches
-- cannot be called (except under --dev, which allows it and warns). When several rules match
-- a tool, every one of them must allow the call.
mcp.policy {
  tools = { "echo", "current_time", "calculate", "hash", "base64" },
  scopes = { "mcp:tools" },
  log_args = { "format", "algorithm", "mode" }, -- safe to write to the audit log
  description = "the demo tools: any caller whose token carries mcp:tools",
}
