local helper = require "helper"

describe("scripts/echo.lua", function()
  local tools

  before_each(function() tools = helper.load_tools("scripts/echo.lua") end)

  it("defines exactly the echo tool, well formed", function()
    assert.same({ "echo" }, helper.names(tools))
    helper.assert_well_formed(tools.echo)
    assert.same({ "text" }, tools.echo.inputSchema.required)
    assert.is_true(tools.echo.annotations.idempotentHint)
  end)

  it("returns the text unchanged", function()
    assert.equal("hello", helper.call(tools, "echo", { text = "hello" }))
  end)

  it("keeps empty, multi-line and non-ASCII text byte for byte", function()
    for _, text in ipairs { "", "a\nb\r\n\tc", "héllo wörld ✓ 😀", ("x"):rep(100000) } do
      assert.equal(text, helper.call(tools, "echo", { text = text }))
    end
  end)

  it("returns exactly one value (a plain text result, not an error)", function()
    assert.equal(1, select("#", helper.call(tools, "echo", { text = "x" })))
  end)
end)
