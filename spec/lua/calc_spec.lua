local helper = require "helper"

describe("scripts/calc.lua", function()
  local tools

  before_each(function() tools = helper.load_tools("scripts/calc.lua") end)

  local function calc(expression)
    return helper.call(tools, "calculate", { expression = expression })
  end

  it("defines calculate, well formed", function()
    local def = tools.calculate
    helper.assert_well_formed(def)
    assert.same({ "expression" }, def.inputSchema.required)
    assert.equal(1000, def.inputSchema.properties.expression.maxLength)
    assert.same({ "result" }, def.outputSchema.required)
    assert.equal("number", def.outputSchema.properties.result.type)
    assert.is_true(def.annotations.idempotentHint)
    for _, word in ipairs { "sqrt", "abs", "floor", "ceil", "min", "max", "pi" } do
      assert.matches(word, def.description, 1, true)
    end
  end)

  it("returns structured { result = number }", function()
    assert.same({ result = 7 }, calc("1 + 2 * 3"))
    assert.same({ result = 3.5 }, calc("7 / 2"))
    assert.same({ result = 2 }, calc("sqrt(max(1, 4))"))
  end)

  it("returns whole results as integers so they print without .0", function()
    assert.equal("integer", math.type(calc("10 / 2").result))
  end)

  it("reports errors as nil, message with position", function()
    local r, err = calc("1 / (2 - 2)")
    assert.is_nil(r)
    assert.equal("division by zero at position 3", err)
    r, err = calc("2 * (3 + ")
    assert.is_nil(r)
    assert.equal("unexpected end of expression at position 10", err)
  end)

  it("refuses an over-long expression even without schema validation", function()
    local r, err = calc(("1+"):rep(500) .. "1")
    assert.is_nil(r)
    assert.matches("too long", err)
  end)

  it("cannot reach Lua: names are only the listed functions and constants", function()
    local attempts = { "os.exit(1)", "load('return 1')()", "_G", "print(1)", "string.rep('x', 9)" }
    for _, evil in ipairs(attempts) do
      local r, err = calc(evil)
      assert.is_nil(r)
      assert.is_string(err)
    end
  end)
end)
