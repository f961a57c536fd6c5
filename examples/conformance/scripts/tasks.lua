-- Tools of the conformance suite's tasks scenarios (the io.modelcontextprotocol/tasks extension
-- of 2026-07-28). A tool declared `task = "optional"` (or "required") becomes a task when its
-- client can take one and the handler first waits (mcp.sleep, mcp.http) or calls ctx.task():
-- the client gets a task handle at once and polls tasks/get. Inside a task, ctx.input parks
-- the task in input_required until tasks/update brings the answers; the handler then runs
-- again from the start with them, as in any round of the 2026-07-28 era.
local function ask(message, property)
  return { method = "elicitation/create", params = {
    message = message,
    requestedSchema = { type = "object", properties = { [property] = { type = "string" } } } } }
end

mcp.tool {
  name = "greet",
  description = "Greets someone (never a task)",
  inputSchema = { type = "object", properties = { name = { type = "string" } }, required = { "name" } },
  handler = function(args) return ("Hello, %s!"):format(args.name) end,
}

mcp.tool {
  name = "slow_compute",
  description = "Works for `seconds` seconds, then answers",
  task = "optional",
  inputSchema = { type = "object", properties = {
    seconds = { type = "number", minimum = 0, maximum = 300 },
    label = { type = "string" } }, required = { "seconds" } },
  handler = function(args, ctx)
    ctx.progress(0, 1, "computing " .. (args.label or ""))
    mcp.sleep(args.seconds)
    return ("computed %s in %g s"):format(args.label or "", args.seconds)
  end,
}

mcp.tool {
  name = "failing_job",
  description = "Runs for a second, then reports that it failed",
  task = "required",
  inputSchema = { type = "object", properties = mcp.object {} },
  handler = function()
    mcp.sleep(1)
    return nil, "the job failed: its input was rejected"
  end,
}

mcp.tool {
  name = "protocol_error_job",
  description = "Crashes (a protocol-level failure of its task)",
  task = "optional",
  inputSchema = { type = "object", properties = mcp.object {} },
  handler = function()
    mcp.sleep(0.2)
    error("the job crashed")
  end,
}

mcp.tool {
  name = "confirm_delete",
  description = "Asks for confirmation inside its task, then deletes",
  task = "optional",
  inputSchema = { type = "object", properties = { filename = { type = "string" } } },
  handler = function(args, ctx)
    ctx.task()
    local r = ctx.input("confirm", { method = "elicitation/create", params = {
      message = ("Delete %s?"):format(args.filename or "the file"),
      requestedSchema = { type = "object", properties = { confirm = { type = "boolean" } } } } })
    local yes = r.action == "accept" and r.content and r.content.confirm
    return (yes and "deleted " or "kept ") .. (args.filename or "the file")
  end,
}

mcp.tool {
  name = "multi_input",
  description = "Asks two things at once inside its task",
  task = "optional",
  inputSchema = { type = "object", properties = mcp.object {} },
  handler = function(_, ctx)
    ctx.task()
    local a = ctx.inputs { first = ask("First name?", "name"), second = ask("Second name?", "name") }
    return ("got %s and %s"):format(a.first.content and a.first.content.name or "?",
                                    a.second.content and a.second.content.name or "?")
  end,
}

mcp.tool {
  name = "test_tool_with_task",
  description = "Asks the user's name first (before any task), then finishes as a task",
  task = "required",
  inputSchema = { type = "object", properties = mcp.object {} },
  handler = function(_, ctx)
    local r = ctx.input("user_name", ask("What is your name?", "name"))
    ctx.task()
    return ("Hello, %s!"):format(r.content and r.content.name or "stranger")
  end,
}
