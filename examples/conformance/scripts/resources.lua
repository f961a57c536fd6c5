-- Resources, templates and prompts of the conformance suite.
local PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="

mcp.static_resource {
  uri = "test://static-text", name = "Static text", mimeType = "text/plain",
  description = "A static text resource",
  handler = function() return "This is the content of the static text resource." end,
}

mcp.static_resource {
  uri = "test://static-binary", name = "Static binary", mimeType = "image/png",
  description = "A static PNG image",
  handler = function() return { blob = PNG } end,
}

mcp.static_resource {
  uri = "test://watched-resource", name = "Watched resource", mimeType = "text/plain",
  description = "A resource clients may subscribe to",
  handler = function() return "Watched resource content." end,
}

mcp.resource_template {
  uriTemplate = "test://template/{id}/data", name = "Template data", mimeType = "application/json",
  description = "Data for any id",
  handler = function(args)
    return mcp.json.encode { id = args.id, templateTest = true, data = "Data for ID: " .. args.id }
  end,
  complete = function(args)
    local out = {}
    for _, id in ipairs { "1", "2", "3", "123" } do
      if id:sub(1, #args.value) == args.value then out[#out + 1] = id end
    end
    return out
  end,
}

mcp.prompt {
  name = "test_simple_prompt",
  description = "A prompt with no arguments",
  handler = function() return "This is a simple prompt for testing." end,
}

mcp.prompt {
  name = "test_prompt_with_arguments",
  description = "A prompt with two required arguments",
  arguments = {
    { name = "arg1", description = "First argument", required = true },
    { name = "arg2", description = "Second argument", required = true },
  },
  handler = function(args)
    return ("Prompt with arguments: arg1='%s', arg2='%s'"):format(args.arg1, args.arg2)
  end,
  complete = function(args)
    if args.argument == "arg1" then return { args.value .. "Value1", args.value .. "Value2" } end
    return {}
  end,
}

mcp.prompt {
  name = "test_prompt_with_embedded_resource",
  description = "A prompt embedding a resource",
  arguments = { { name = "resourceUri", description = "The resource to embed", required = true } },
  handler = function(args)
    return {
      { role = "user", content = mcp.resource { uri = args.resourceUri, mimeType = "text/plain",
                                                text = "Embedded resource content for testing." } },
      { role = "user", content = "Please process the embedded resource above." },
    }
  end,
}

mcp.prompt {
  name = "test_prompt_with_image",
  description = "A prompt with an image",
  handler = function()
    return {
      { role = "user", content = mcp.image(PNG, "image/png") },
      { role = "user", content = "Please analyze the image above." },
    }
  end,
}
