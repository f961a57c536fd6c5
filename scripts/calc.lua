-- calculate: arithmetic on request, through the parser in lib/expr.lua (never load()).

local expr = require "expr"

mcp.tool {
  name = "calculate",
  title = "Calculator",
  description = "Evaluates an arithmetic expression and returns {\"result\": number}. Supports "
    .. "numbers (42, 2.5, .5, 1e-3), + - * / % (floored modulo) and ^ (power, "
    .. "right-associative; -2^2 is -4), unary minus, parentheses, the functions "
    .. table.concat(expr.functions, ", ")
    .. " and the constants pi and e. Arithmetic is double precision. Errors (syntax, division "
    .. "by zero, out of range) name the character position, counting from 1.",
  inputSchema = {
    type = "object",
    properties = {
      expression = {
        type = "string",
        minLength = 1,
        maxLength = expr.MAX_LENGTH,
        description = "The expression, e.g. \"(1 + sqrt(2)) / 2\" or \"max(3, 2^5) % 7\".",
      },
    },
    required = { "expression" },
    additionalProperties = false,
  },
  outputSchema = {
    type = "object",
    properties = { result = { type = "number" } },
    required = { "result" },
    additionalProperties = false,
  },
  annotations = { readOnlyHint = true, idempotentHint = true, openWorldHint = false },
  handler = function(args)
    local value, err = expr.evaluate(args.expression)
    if value == nil then return nil, err end
    return { result = value }
  end,
}
