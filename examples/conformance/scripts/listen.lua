-- The suite's hooks for subscriptions/listen (2026-07-28): each trigger really changes a list
-- (it switches a feature-flagged entry off, or back on), and the host tells every stream that
-- listens for that list, as it does after a reload that changed it.
local NONE = { type = "object", properties = mcp.object {} }

mcp.tool {
  name = "test_flagged_tool",
  description = "A tool behind a run-time switch (test_trigger_tool_change flips it)",
  inputSchema = NONE,
  handler = function() return "flagged tool ran" end,
}

mcp.prompt {
  name = "test_flagged_prompt",
  description = "A prompt behind a run-time switch (test_trigger_prompt_change flips it)",
  handler = function() return "A flagged prompt." end,
}

local function flip(kind, name)
  if mcp.enabled(kind, name) then mcp.disable(kind, name) else mcp.enable(kind, name) end
  return ("%s %s is now %s"):format(kind, name, mcp.enabled(kind, name) and "listed" or "hidden")
end

mcp.tool {
  name = "test_trigger_tool_change",
  description = "Changes the tool list (switches test_flagged_tool off or on)",
  inputSchema = NONE,
  handler = function() return flip("tool", "test_flagged_tool") end,
}

mcp.tool {
  name = "test_trigger_prompt_change",
  description = "Changes the prompt list (switches test_flagged_prompt off or on)",
  inputSchema = NONE,
  handler = function() return flip("prompt", "test_flagged_prompt") end,
}
