-- The tools the official MCP conformance suite (@modelcontextprotocol/conformance) calls,
-- written as any luamcp tool is. See README.md beside this directory's parent.
local PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
local WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
local NONE = { type = "object", properties = mcp.object {} }

mcp.tool {
  name = "test_simple_text",
  description = "Returns a simple text response",
  inputSchema = NONE,
  handler = function() return "This is a simple text response for testing." end,
}

mcp.tool {
  name = "test_image_content",
  description = "Returns an image",
  inputSchema = NONE,
  handler = function() return mcp.image(PNG, "image/png") end,
}

mcp.tool {
  name = "test_audio_content",
  description = "Returns audio",
  inputSchema = NONE,
  handler = function() return mcp.audio(WAV, "audio/wav") end,
}

mcp.tool {
  name = "test_embedded_resource",
  description = "Returns an embedded resource",
  inputSchema = NONE,
  handler = function()
    return mcp.resource { uri = "test://embedded-resource", mimeType = "text/plain",
                          text = "This is an embedded resource content." }
  end,
}

mcp.tool {
  name = "test_multiple_content_types",
  description = "Returns text, an image and a resource",
  inputSchema = NONE,
  handler = function()
    return {
      mcp.text("Multiple content types test:"),
      mcp.image(PNG, "image/png"),
      mcp.resource { uri = "test://mixed-content-resource", mimeType = "application/json",
                     text = mcp.json.encode { test = "data", value = 123 } },
    }
  end,
}

mcp.tool {
  name = "test_tool_with_logging",
  description = "Logs three messages to the client while it runs",
  inputSchema = NONE,
  handler = function(_, ctx)
    ctx.log("info", "Tool execution started")
    ctx.log("info", "Tool processing data")
    ctx.log("info", "Tool execution completed")
    return "Tool with logging executed successfully"
  end,
}

mcp.tool {
  name = "test_error_handling",
  description = "Always fails, as a tool error",
  inputSchema = NONE,
  handler = function() return nil, "This tool intentionally returns an error for testing" end,
}

mcp.tool {
  name = "test_tool_with_progress",
  description = "Reports progress 0, 50 and 100 of 100",
  inputSchema = NONE,
  handler = function(_, ctx)
    for _, p in ipairs { 0, 50, 100 } do ctx.progress(p, 100, ("step %d"):format(p)) end
    return tostring(ctx.request_id)
  end,
}

mcp.tool {
  name = "json_schema_2020_12_tool",
  description = "Tool with JSON Schema 2020-12 features",
  inputSchema = {
    ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
    type = "object",
    ["$defs"] = {
      address = { ["$anchor"] = "addressDef", type = "object",
                  properties = { street = { type = "string" }, city = { type = "string" } } },
    },
    properties = {
      name = { type = "string" },
      address = { ["$ref"] = "#/$defs/address" },
      contactMethod = { type = "string", enum = { "phone", "email" } },
      phone = { type = "string" },
      email = { type = "string" },
    },
    allOf = { { anyOf = { { required = { "phone" } }, { required = { "email" } } } } },
    ["if"] = { properties = { contactMethod = { const = "phone" } }, required = { "contactMethod" } },
    ["then"] = { required = { "phone" } },
    ["else"] = { required = { "email" } },
    additionalProperties = false,
  },
  handler = function(args) return args end,
}

mcp.tool {
  name = "test_reconnection",
  description = "Ends its SSE stream before answering: the client resumes with Last-Event-ID",
  inputSchema = NONE,
  handler = function(_, ctx)
    ctx.close_stream()
    return "Reconnection test completed successfully. If you received this, the client "
      .. "properly reconnected after stream closure."
  end,
}
