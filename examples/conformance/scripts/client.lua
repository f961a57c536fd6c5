-- Tools that ask the client something while they run: sampling and elicitation. The request
-- goes to the client on the tools/call's SSE stream; the tool waits for the answer (without
-- blocking the server) and goes on with it. Each returns nil and a reason when the client
-- cannot answer (no such capability, no SSE, no answer in time).

mcp.tool {
  name = "test_sampling",
  description = "Asks the client's model to complete a prompt",
  inputSchema = { type = "object", properties = { prompt = { type = "string" } }, required = { "prompt" } },
  handler = function(args, ctx)
    local r, err = ctx.sample {
      messages = { { role = "user", content = { type = "text", text = args.prompt } } },
      maxTokens = 100,
    }
    if not r then return nil, "sampling failed: " .. err end
    return "LLM response: " .. (r.content and r.content.text or "")
  end,
}

mcp.tool {
  name = "test_elicitation",
  description = "Asks the user for their name and email",
  inputSchema = { type = "object", properties = { message = { type = "string" } }, required = { "message" } },
  handler = function(args, ctx)
    local r, err = ctx.elicit {
      message = args.message,
      requestedSchema = {
        type = "object",
        properties = {
          username = { type = "string", description = "User's response" },
          email = { type = "string", description = "User's email address" },
        },
        required = { "username", "email" },
      },
    }
    if not r then return nil, "elicitation failed: " .. err end
    return ("User response: action=%s, content=%s"):format(r.action, mcp.json.encode(r.content or mcp.object {}))
  end,
}

mcp.tool {
  name = "test_elicitation_sep1034_defaults",
  description = "Elicitation whose fields have default values",
  inputSchema = { type = "object", properties = mcp.object {} },
  handler = function(_, ctx)
    local r, err = ctx.elicit {
      message = "Please review and update the form fields with defaults",
      requestedSchema = {
        type = "object",
        properties = {
          name = { type = "string", description = "User name", default = "John Doe" },
          age = { type = "integer", description = "User age", default = 30 },
          score = { type = "number", description = "User score", default = 95.5 },
          status = { type = "string", description = "User status", enum = { "active", "inactive", "pending" }, default = "active" },
          verified = { type = "boolean", description = "Verification status", default = true },
        },
        required = mcp.array {},
      },
    }
    if not r then return nil, "elicitation failed: " .. err end
    return ("Elicitation completed: action=%s, content=%s"):format(r.action, mcp.json.encode(r.content or mcp.object {}))
  end,
}

mcp.tool {
  name = "test_elicitation_sep1330_enums",
  description = "Elicitation with every kind of enum",
  inputSchema = { type = "object", properties = mcp.object {} },
  handler = function(_, ctx)
    local function titled(prefix, names)
      local out = {}
      for i, t in ipairs(names) do out[i] = { const = prefix .. i, title = t } end
      return out
    end
    local r, err = ctx.elicit {
      message = "Please choose",
      requestedSchema = {
        type = "object",
        properties = {
          untitledSingle = { type = "string", description = "Select one option", enum = { "option1", "option2", "option3" } },
          titledSingle = { type = "string", description = "Select one option with titles",
                           oneOf = titled("value", { "First Option", "Second Option", "Third Option" }) },
          legacyEnum = { type = "string", description = "Select one option (legacy)", enum = { "opt1", "opt2", "opt3" },
                         enumNames = { "Option One", "Option Two", "Option Three" } },
          untitledMulti = { type = "array", description = "Select multiple options", minItems = 1, maxItems = 3,
                            items = { type = "string", enum = { "option1", "option2", "option3" } } },
          titledMulti = { type = "array", description = "Select multiple options with titles", minItems = 1, maxItems = 3,
                          items = { anyOf = titled("value", { "First Choice", "Second Choice", "Third Choice" }) } },
        },
      },
    }
    if not r then return nil, "elicitation failed: " .. err end
    return ("Elicitation completed: action=%s, content=%s"):format(r.action, mcp.json.encode(r.content or mcp.object {}))
  end,
}
