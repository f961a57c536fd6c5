local expr = require "expr"

-- Asserts that src evaluates to exactly `want` (value and integer/float subtype).
local function yields(want, src)
  local got, err = expr.evaluate(src)
  assert.is_nil(err, src)
  assert.equal(math.type(want), math.type(got), src)
  assert.equal(want, got, src)
end

-- Asserts that src fails with exactly `message`.
local function fails(message, src)
  local got, err = expr.evaluate(src)
  assert.is_nil(got, src)
  assert.equal(message, err, src)
end

describe("lib/expr", function()
  describe("numbers", function()
    it("reads integers, decimals, leading dots and exponents", function()
      yields(42, "42")
      yields(2.5, "2.5")
      yields(0.5, ".5")
      yields(1, "1.")
      yields(1000, "1e3")
      yields(0.0015, "1.5e-3")
      yields(120, "1.2E+2")
      yields(7, "  \t7\n")
    end)

    it("returns whole values as integers, others as floats", function()
      yields(4, "8 / 2")
      yields(0.1 + 0.2, "0.1 + 0.2")
      yields(0, "-0")
      yields(9007199254740992, "2^53")
      yields(2.0 ^ 60, "2^60") -- beyond 2^53 a double is not exact: stays a float
    end)
  end)

  describe("operators", function()
    it("follows the usual precedence", function()
      yields(7, "1 + 2 * 3")
      yields(9, "(1 + 2) * 3")
      yields(1, "7 - 3 - 3")   -- left-associative
      yields(1, "8 / 4 / 2")
      yields(18, "2 * 3 ^ 2")
      yields(5, "1 + 2 ^ 2")
    end)

    it("makes ^ right-associative and tighter than unary minus", function()
      yields(512, "2^3^2")
      yields(-4, "-2^2")
      yields(4, "(-2)^2")
      yields(0.25, "2^-2")
      yields(0.5, "4^-0.5")
    end)

    it("takes any chain of unary signs", function()
      yields(-3, "-3")
      yields(3, "--3")
      yields(-3, "+-+3")
      yields(-6, "2*-3")
    end)

    it("uses the floored modulo", function()
      yields(1, "7 % 3")
      yields(2, "-7 % 3")
      yields(-2, "7 % -3")
      yields(1.5, "5.5 % 2")
    end)

    it("does not wrap around like Lua integers", function()
      yields(2.0 ^ 64, "9223372036854775807 * 2 + 2")
    end)
  end)

  describe("functions and constants", function()
    it("knows sqrt abs floor ceil min max", function()
      yields(4, "sqrt(16)")
      yields(1.5, "sqrt(2.25)")
      yields(3, "abs(-3)")
      yields(-3, "floor(-2.5)")
      yields(3, "ceil(2.1)")
      yields(1, "min(3, 1, 2)")
      yields(7, "max(7)")
      yields(9, "max(1, 2 * 4, 9 % 10)")
      yields(5, "sqrt(abs(-5) * 5)")
    end)

    it("knows pi and e", function()
      yields(math.pi, "pi")
      yields(math.exp(1), "e")
      yields(2 * math.pi, "2 * pi")
      yields(-1, "floor(-e / pi)")
    end)

    it("lists the functions it knows", function()
      assert.same({ "abs", "ceil", "floor", "max", "min", "sqrt" }, expr.functions)
    end)
  end)

  describe("errors", function()
    it("says what is wrong and where", function()
      fails("expression is empty", "")
      fails("expression is empty", "  \n ")
      fails("unexpected end of expression at position 4", "1 +")
      fails("unexpected '*' at position 1", "* 2")
      fails("unexpected ')' at position 2 (the expression before it is already complete)", "1)")
      fails("unexpected 'pi' at position 2 (the expression before it is already complete)", "2pi")
      fails("expected ')' but found end of expression at position 7"
        .. " (to close the '(' at position 1)", "(1 + 2")
      fails("unexpected ')' at position 7", "max(1,)")
      fails("expected ')' but found number at position 7 (to close the call to max)", "max(1 2)")
    end)

    it("names unknown characters without breaking UTF-8", function()
      fails("unexpected character '$' at position 3", "1 $ 2")
      fails("unexpected character 'é' at position 3", "1 é 2")
      fails("unexpected byte 0x01 at position 3", "1 \1 2")
      fails("unexpected byte 0xFF at position 1", "\255")
    end)

    it("rejects unknown names and misuse of known ones", function()
      local known = " (functions: abs, ceil, floor, max, min, sqrt; constants: pi, e)"
      fails("unknown name 'x' at position 5" .. known, "1 + x")
      fails("unknown name 'exit' at position 1" .. known, "exit(1)")
      fails("unexpected character '.' at position 3", "os.exit()")
      fails("function 'sqrt' is not called at position 1 (write sqrt(x))", "sqrt + 1")
      fails("constant 'pi' cannot be called at position 1", "pi(2)")
      fails("sqrt expects 1 argument, got 2 at position 1", "sqrt(1, 2)")
      fails("sqrt expects 1 argument, got 0 at position 1", "sqrt()")
      fails("min expects at least 1 argument, got 0 at position 1", "min()")
    end)

    it("refuses arithmetic without a finite real result", function()
      fails("division by zero at position 3", "1 / 0")
      fails("division by zero at position 7", "1 + 2 / (3 - 3)")
      fails("modulo by zero at position 3", "5 % 0")
      fails("division by zero at position 2", "0^-1")
      fails("sqrt of a negative number at position 1", "sqrt(-1)")
      fails("result is not a real number at position 5", "(-8)^(1/3)")
      fails("result is out of range at position 3", "10^400")
      fails("result is out of range at position 7", "1e300 * 1e300 * 0")
      fails("number is too large at position 1", "1e400")
      fails("number is too large at position 1", ("9"):rep(400))
    end)

    it("bounds length and nesting", function()
      fails("expression is too long (1001 bytes, the limit is 1000)", ("1"):rep(1001))
      yields(1, ("("):rep(100) .. "1" .. (")"):rep(100))
      fails("expression is nested too deeply at position 101 (the limit is 100 levels)",
        ("("):rep(101) .. "1" .. (")"):rep(101))
      fails("expression is nested too deeply at position 101 (the limit is 100 levels)",
        ("-"):rep(200) .. "1")
      yields(500, ("1+"):rep(499) .. "1") -- long flat chains are loops, not recursion
    end)

    it("raises only for a non-string argument (a bug in the caller)", function()
      assert.has_error(function() expr.evaluate(42) end,
        "expr.evaluate: expected a string, got number")
    end)
  end)

  describe("safety", function()
    it("evaluates without load, loadstring or dofile", function()
      local saved = { load = load, loadstring = rawget(_G, "loadstring"), dofile = dofile }
      local function trap() error("expr called a loader") end
      load, dofile = trap, trap
      rawset(_G, "loadstring", trap)
      local ok, v = pcall(expr.evaluate, "sqrt(2) * (1 + 2) ^ 2 - max(1, 2)")
      load, dofile = saved.load, saved.dofile
      rawset(_G, "loadstring", saved.loadstring)
      assert.is_true(ok, v)
      assert.is_near(math.sqrt(2) * 9 - 2, v, 1e-12)
    end)

    it("has no loader in its source at all", function()
      local helper = require "helper"
      local f = assert(io.open(helper.path("scripts/lib/expr.lua")))
      local src = f:read("a")
      f:close()
      for _, word in ipairs { "load", "loadstring", "dofile", "require", "setfenv", "debug" } do
        assert.is_nil(src:find("%f[%w_]" .. word .. "%f[^%w_]"), "expr.lua mentions " .. word)
      end
    end)
  end)
end)
