-- current_time: the server's clock, as ISO 8601 text and as Unix seconds. Uses only os.time
-- and os.date, which the sandbox allows.

local MIN_OFFSET, MAX_OFFSET = -720, 840 -- UTC-12:00 .. UTC+14:00, the zones in use

-- ISO 8601 for Unix time t shifted to utc_offset_minutes, e.g. 2024-03-01T12:30:00+05:30.
local function iso8601(t, offset)
  local stamp = os.date("!%Y-%m-%dT%H:%M:%S", t + offset * 60)
  if offset == 0 then return stamp .. "Z" end
  local sign = offset < 0 and "-" or "+"
  local minutes = math.abs(offset)
  return string.format("%s%s%02d:%02d", stamp, sign, minutes // 60, minutes % 60)
end

mcp.tool {
  name = "current_time",
  title = "Current time",
  description = "Returns the current date and time of the server clock, to the second. The "
    .. "result has `iso8601` (e.g. 2024-03-01T12:30:00Z, or with an offset such as +05:30 when "
    .. "utc_offset_minutes is given) and `unix` (seconds since 1970-01-01T00:00:00Z). Set "
    .. "`format` to get only one of the two.",
  inputSchema = {
    type = "object",
    properties = {
      format = {
        type = "string",
        enum = { "iso8601", "unix" },
        description = "Return only this representation (default: both).",
      },
      utc_offset_minutes = {
        type = "integer",
        minimum = MIN_OFFSET,
        maximum = MAX_OFFSET,
        description = "Offset from UTC for the iso8601 text, in minutes (e.g. 60 for UTC+01:00, "
          .. "-300 for UTC-05:00). Default 0 (UTC). Does not change `unix`.",
      },
    },
    additionalProperties = false,
  },
  outputSchema = {
    type = "object",
    properties = {
      iso8601 = { type = "string" },
      unix = { type = "integer" },
    },
    additionalProperties = false,
  },
  -- Reading the clock changes nothing, so calling again has no further effect on the world
  -- (idempotentHint is about effects; the answer itself naturally moves on).
  annotations = { readOnlyHint = true, idempotentHint = true, openWorldHint = false },
  handler = function(args)
    local offset = 0
    if args.utc_offset_minutes ~= nil then
      local given = args.utc_offset_minutes
      offset = type(given) == "number" and math.tointeger(given) or nil
      if offset == nil or offset < MIN_OFFSET or offset > MAX_OFFSET then
        return nil, string.format("utc_offset_minutes must be an integer from %d to %d",
          MIN_OFFSET, MAX_OFFSET)
      end
    end
    local format = args.format
    if format ~= nil and format ~= "iso8601" and format ~= "unix" then
      return nil, "format must be \"iso8601\" or \"unix\""
    end

    local now = os.time()
    local result = {}
    if format ~= "unix" then result.iso8601 = iso8601(now, offset) end
    if format ~= "iso8601" then result.unix = now end
    return result
  end,
}
