-- Tools of the conformance suite's 2026-07-28 scenarios. In that era a request to the client
-- is an input request of the result (MRTR): ctx.input(key, request) returns the client's
-- answer when this round brings it, and otherwise ends the round asking for it; ctx.state()
-- and ctx.set_state() carry the handler's own state between rounds (signed by the host).
local NONE = { type = "object", properties = mcp.object {} }

local function ask_name()
  return { method = "elicitation/create", params = {
    message = "What is your name?",
    requestedSchema = { type = "object", properties = { name = { type = "string" } }, required = { "name" } } } }
end

local function sample(text)
  return { method = "sampling/createMessage", params = {
    messages = { { role = "user", content = { type = "text", text = text } } }, maxTokens = 100 } }
end

mcp.tool {
  name = "test_missing_capability",
  description = "Needs the client's sampling capability",
  inputSchema = NONE,
  requires = { "sampling" },
  handler = function(_, ctx)
    local r, err = ctx.sample { messages = { { role = "user", content = { type = "text", text = "hi" } } }, maxTokens = 10 }
    if not r then return nil, err end
    return "sampled"
  end,
}

mcp.tool {
  name = "test_streaming_elicitation",
  description = "Asks the user something (an input request in this era, never a stream request)",
  inputSchema = NONE,
  handler = function(_, ctx)
    ctx.progress(0, 1, "asking")
    local r = ctx.elicit { message = "Continue?", requestedSchema = { type = "object", properties = { ok = { type = "boolean" } } } }
    return "answered: " .. tostring(r and r.action)
  end,
}

mcp.tool {
  name = "test_logging_tool",
  description = "Logs, which reaches the client only if it asked for a log level",
  inputSchema = NONE,
  handler = function(_, ctx)
    ctx.log("info", "logging tool ran")
    return "logged"
  end,
}

mcp.tool {
  name = "test_input_required_result_elicitation",
  description = "Asks the user's name, then greets them",
  inputSchema = NONE,
  handler = function(_, ctx)
    local r = ctx.input("user_name", ask_name())
    return ("Hello, %s!"):format(r.content and r.content.name or "stranger")
  end,
}

mcp.tool {
  name = "test_input_required_result_sampling",
  description = "Asks the client's model a question",
  inputSchema = NONE,
  handler = function(_, ctx)
    local r = ctx.input("capital_question", sample("What is the capital of France?"))
    return "The model says: " .. (r.content and r.content.text or "")
  end,
}

mcp.tool {
  name = "test_input_required_result_list_roots",
  description = "Asks the client for its roots",
  inputSchema = NONE,
  handler = function(_, ctx)
    local r = ctx.input("client_roots", { method = "roots/list", params = mcp.object {} })
    return ("%d roots"):format(#(r.roots or {}))
  end,
}

mcp.tool {
  name = "test_input_required_result_request_state",
  description = "Keeps state across rounds",
  inputSchema = NONE,
  handler = function(_, ctx)
    ctx.set_state("state-ok")
    local r = ctx.input("confirm", { method = "elicitation/create", params = {
      message = "Confirm?", requestedSchema = { type = "object", properties = { ok = { type = "boolean" } } } } })
    return ("confirmed=%s, %s"):format(tostring(r.content and r.content.ok), ctx.state() or "no state")
  end,
}

mcp.tool {
  name = "test_input_required_result_multiple_inputs",
  description = "Asks three things at once",
  inputSchema = NONE,
  handler = function(_, ctx)
    ctx.set_state("multi")
    local a = ctx.inputs {
      user_name = ask_name(),
      greeting = sample("Say hello"),
      client_roots = { method = "roots/list", params = mcp.object {} },
    }
    return ("name=%s, roots=%d"):format(a.user_name.content and a.user_name.content.name or "?", #(a.client_roots.roots or {}))
  end,
}

mcp.tool {
  name = "test_input_required_result_multi_round",
  description = "Asks one thing, then another",
  inputSchema = NONE,
  handler = function(_, ctx)
    if ctx.state() ~= "step2" then
      ctx.set_state("step1")
      ctx.input("step1", ask_name())
      ctx.set_state("step2") -- only reached with step1's answer
    end
    local c = ctx.input("step2", { method = "elicitation/create", params = {
      message = "Favourite colour?", requestedSchema = { type = "object", properties = { color = { type = "string" } } } } })
    return "colour: " .. tostring(c.content and c.content.color)
  end,
}

mcp.tool {
  name = "test_input_required_result_tampered_state",
  description = "Its request state is signed: an altered one is refused",
  inputSchema = NONE,
  handler = function(_, ctx)
    ctx.set_state("signed")
    ctx.input("confirm", ask_name())
    return "state " .. tostring(ctx.state())
  end,
}

mcp.tool {
  name = "test_input_required_result_capabilities",
  description = "Asks only what the client can answer",
  inputSchema = NONE,
  handler = function(_, ctx)
    if ctx.can("elicitation") then
      ctx.input("user_name", ask_name())
    else
      ctx.input("question", sample("Pick a name"))
    end
    return "asked"
  end,
}

mcp.prompt {
  name = "test_input_required_result_prompt",
  description = "A prompt that asks the user for context first",
  handler = function(_, ctx)
    local r = ctx.input("user_context", { method = "elicitation/create", params = {
      message = "Any context?", requestedSchema = { type = "object", properties = { context = { type = "string" } } } } })
    return "Context: " .. tostring(r.content and r.content.context)
  end,
}

-- SEP-2243: an argument mirrored in an HTTP header (Mcp-Param-Region), which the host checks
-- against the body before the call runs.
mcp.tool {
  name = "test_custom_header",
  description = "Runs a query in a region an intermediary can route on",
  inputSchema = { type = "object", properties = {
    region = { type = "string", description = "where to run it", ["x-mcp-header"] = "Region" },
    query = { type = "string" } }, required = { "region" } },
  handler = function(args) return "ran in " .. args.region end,
}
