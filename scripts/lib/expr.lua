-- expr — a safe arithmetic evaluator: a tokenizer and a recursive-descent parser that computes
-- as it parses. No text is ever compiled as Lua, so an expression can only do arithmetic.
--
--   expression := term    { ("+" | "-") term }
--   term       := unary   { ("*" | "/" | "%") unary }
--   unary      := ("-" | "+") unary | power
--   power      := primary [ "^" unary ]          -- right-associative; -2^2 is -(2^2)
--   primary    := number | constant | name "(" expression { "," expression } ")"
--               | "(" expression ")"
--
-- All arithmetic is in floats (no silent integer wrap-around); a whole result that a double
-- holds exactly is returned as a Lua integer. "%" is the floored modulo (Lua's: the result
-- takes the sign of the divisor). Expected failures are `nil, "message at position N"`;
-- positions count characters from 1.

local M = {}

M.MAX_LENGTH = 1000
M.MAX_DEPTH = 100 -- nesting of parentheses, unary signs and powers

local EXACT_LIMIT = 2 ^ 53 -- above this a double no longer holds every integer

M.constants = { pi = math.pi, e = math.exp(1) }

-- name -> { min args, max args (nil: any), function(fail, args...) }; fail(message) reports a
-- domain error at the position of the call.
local functions = {
  sqrt = { 1, 1, function(fail, x)
    if x < 0 then fail("sqrt of a negative number") end
    return math.sqrt(x)
  end },
  abs = { 1, 1, function(_, x) return math.abs(x) end },
  floor = { 1, 1, function(_, x) return math.floor(x) + 0.0 end },
  ceil = { 1, 1, function(_, x) return math.ceil(x) + 0.0 end },
  min = { 1, nil, function(_, ...) return math.min(...) end },
  max = { 1, nil, function(_, ...) return math.max(...) end },
}

M.functions = {}
for name in pairs(functions) do M.functions[#M.functions + 1] = name end
table.sort(M.functions)

-- An error raised inside the parser: caught in M.evaluate, never seen by callers.
local Failure = {}

-- Raises "message at position N", plus " (hint)" when there is one.
local function fail(pos, message, hint)
  message = message .. " at position " .. pos
  if hint then message = message .. " (" .. hint .. ")" end
  error(setmetatable({ message = message }, Failure), 0)
end

-- How to name the character at pos in a message, keeping the message valid UTF-8.
local function describe_char(src, pos)
  local b = src:byte(pos)
  if b >= 0x20 and b < 0x7f then return string.format("character '%s'", src:sub(pos, pos)) end
  if b >= 0x80 then
    local ch = src:match("^" .. utf8.charpattern, pos)
    if ch and utf8.len(ch) == 1 then return string.format("character '%s'", ch) end
  end
  return string.format("byte 0x%02X", b)
end

local SINGLE = { ["+"] = true, ["-"] = true, ["*"] = true, ["/"] = true, ["%"] = true,
                 ["^"] = true, ["("] = true, [")"] = true, [","] = true }

-- Returns the list of tokens { kind = "number"|"name"|"op"|"end", value, pos }.
local function tokenize(src)
  local tokens, pos, len = {}, 1, #src
  while true do
    pos = src:find("[^ \t\r\n]", pos) or len + 1
    if pos > len then break end
    local c = src:sub(pos, pos)
    local num = src:match("^%d+%.?%d*", pos) or src:match("^%.%d+", pos)
    if num then
      local exp = src:match("^[eE][+-]?%d+", pos + #num)
      if exp then num = num .. exp end
      local value = tonumber(num) + 0.0
      if value == math.huge then fail(pos, "number is too large") end
      tokens[#tokens + 1] = { kind = "number", value = value, pos = pos }
      pos = pos + #num
    elseif c:match("[%a_]") then
      local name = src:match("^[%w_]+", pos)
      tokens[#tokens + 1] = { kind = "name", value = name, pos = pos }
      pos = pos + #name
    elseif SINGLE[c] then
      tokens[#tokens + 1] = { kind = "op", value = c, pos = pos }
      pos = pos + 1
    else
      fail(pos, "unexpected " .. describe_char(src, pos))
    end
  end
  tokens[#tokens + 1] = { kind = "end", pos = len + 1 }
  return tokens
end

local Parser = {}
Parser.__index = Parser

function Parser:peek() return self.tokens[self.i] end

function Parser:next()
  local t = self.tokens[self.i]
  self.i = self.i + 1
  return t
end

function Parser:accept(op)
  local t = self.tokens[self.i]
  if t.kind == "op" and t.value == op then
    self.i = self.i + 1
    return t
  end
end

local function describe_token(t)
  if t.kind == "end" then return "end of expression" end
  if t.kind == "number" then return "number" end
  return "'" .. t.value .. "'"
end

function Parser:expect(op, hint)
  local t = self:peek()
  if not self:accept(op) then
    fail(t.pos, string.format("expected '%s' but found %s", op, describe_token(t)), hint)
  end
end

function Parser:enter(pos)
  self.depth = self.depth + 1
  if self.depth > M.MAX_DEPTH then
    fail(pos, "expression is nested too deeply", "the limit is " .. M.MAX_DEPTH .. " levels")
  end
end

function Parser:leave() self.depth = self.depth - 1 end

-- Every computed value goes through here, so no infinity or NaN ever reaches the caller.
local function checked(value, pos)
  if value ~= value then fail(pos, "result is not a real number") end
  if value == math.huge or value == -math.huge then fail(pos, "result is out of range") end
  return value
end

local binary = {
  ["+"] = function(a, b) return a + b end,
  ["-"] = function(a, b) return a - b end,
  ["*"] = function(a, b) return a * b end,
  ["/"] = function(a, b, pos)
    if b == 0 then fail(pos, "division by zero") end
    return a / b
  end,
  ["%"] = function(a, b, pos)
    if b == 0 then fail(pos, "modulo by zero") end
    return a % b
  end,
  ["^"] = function(a, b, pos)
    if a == 0 and b < 0 then fail(pos, "division by zero") end
    return a ^ b
  end,
}

function Parser:binary_loop(operand, ops)
  local left = operand(self)
  while true do
    local t = self:peek()
    if t.kind ~= "op" or not ops[t.value] then return left end
    self:next()
    local right = operand(self)
    left = checked(binary[t.value](left, right, t.pos), t.pos)
  end
end

local ADDITIVE = { ["+"] = true, ["-"] = true }
local MULTIPLICATIVE = { ["*"] = true, ["/"] = true, ["%"] = true }

function Parser:expression() return self:binary_loop(Parser.term, ADDITIVE) end

function Parser:term() return self:binary_loop(Parser.unary, MULTIPLICATIVE) end

function Parser:unary()
  local t = self:peek()
  if t.kind == "op" and (t.value == "-" or t.value == "+") then
    self:next()
    self:enter(t.pos)
    local v = self:unary()
    self:leave()
    return t.value == "-" and -v or v
  end
  return self:power()
end

function Parser:power()
  local base = self:primary()
  local t = self:accept("^")
  if not t then return base end
  self:enter(t.pos)
  local exponent = self:unary()
  self:leave()
  return checked(binary["^"](base, exponent, t.pos), t.pos)
end

function Parser:call(name_tok)
  local name = name_tok.value
  local spec = functions[name]
  local args = {}
  self:enter(name_tok.pos)
  if not self:accept(")") then
    repeat
      args[#args + 1] = self:expression()
    until not self:accept(",")
    self:expect(")", "to close the call to " .. name)
  end
  self:leave()
  local min, max = spec[1], spec[2]
  if #args < min or (max and #args > max) then
    local wanted = (max == min and "" or "at least ") .. min
      .. (min == 1 and " argument" or " arguments")
    fail(name_tok.pos, string.format("%s expects %s, got %d", name, wanted, #args))
  end
  local function fail_here(message) fail(name_tok.pos, message) end
  return checked(spec[3](fail_here, table.unpack(args)), name_tok.pos)
end

function Parser:primary()
  local t = self:next()
  if t.kind == "number" then return t.value end
  if t.kind == "name" then
    local is_call = self:accept("(")
    if functions[t.value] then
      if not is_call then
        fail(t.pos, "function '" .. t.value .. "' is not called", "write " .. t.value .. "(x)")
      end
      return self:call(t)
    end
    if M.constants[t.value] then
      if is_call then fail(t.pos, "constant '" .. t.value .. "' cannot be called") end
      return M.constants[t.value]
    end
    fail(t.pos, "unknown name '" .. t.value .. "'",
      "functions: " .. table.concat(M.functions, ", ") .. "; constants: pi, e")
  end
  if t.kind == "op" and t.value == "(" then
    self:enter(t.pos)
    local v = self:expression()
    self:expect(")", "to close the '(' at position " .. t.pos)
    self:leave()
    return v
  end
  if t.kind == "end" then fail(t.pos, "unexpected end of expression") end
  fail(t.pos, "unexpected " .. describe_token(t))
end

local function parse(src)
  local p = setmetatable({ tokens = tokenize(src), i = 1, depth = 0 }, Parser)
  local value = p:expression()
  local t = p:peek()
  if t.kind ~= "end" then
    fail(t.pos, "unexpected " .. describe_token(t), "the expression before it is already complete")
  end
  return value
end

-- Returns the value of src as a number (an integer when it is whole and exactly
-- representable), or nil, "message at position N".
function M.evaluate(src)
  if type(src) ~= "string" then
    error("expr.evaluate: expected a string, got " .. type(src), 2)
  end
  if #src > M.MAX_LENGTH then
    return nil, string.format("expression is too long (%d bytes, the limit is %d)", #src,
      M.MAX_LENGTH)
  end
  if not src:find("[^ \t\r\n]") then return nil, "expression is empty" end
  local ok, result = pcall(parse, src)
  if not ok then
    if getmetatable(result) == Failure then return nil, result.message end
    error(result, 0) -- a bug in this module, not in the expression
  end
  if result == math.floor(result) and math.abs(result) <= EXACT_LIMIT then
    return math.tointeger(result)
  end
  return result
end

return M
