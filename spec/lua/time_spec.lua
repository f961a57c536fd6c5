local helper = require "helper"

describe("scripts/time.lua", function()
  local tools, real_time

  before_each(function()
    tools = helper.load_tools("scripts/time.lua")
    real_time = os.time
  end)

  after_each(function() os.time = real_time end)

  -- Freezes the clock the handler reads (os.time(table) still converts, for anyone else).
  local function at(t)
    os.time = function(...)
      if select("#", ...) > 0 then return real_time(...) end
      return t
    end
  end

  local function now(args) return helper.call(tools, "current_time", args or {}) end

  it("defines current_time, well formed", function()
    assert.same({ "current_time" }, helper.names(tools))
    helper.assert_well_formed(tools.current_time)
    local props = tools.current_time.inputSchema.properties
    assert.same({ "iso8601", "unix" }, props.format.enum)
    assert.equal("integer", props.utc_offset_minutes.type)
    assert.equal(-720, props.utc_offset_minutes.minimum)
    assert.equal(840, props.utc_offset_minutes.maximum)
    assert.is_nil(tools.current_time.inputSchema.required)
  end)

  it("returns both forms of the real current time by default", function()
    local before = real_time()
    local r = now()
    local after = real_time()
    assert.equal("integer", math.type(r.unix))
    assert.is_true(r.unix >= before and r.unix <= after)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", r.iso8601)
  end)

  it("formats a known instant in UTC", function()
    at(0)
    assert.same({ iso8601 = "1970-01-01T00:00:00Z", unix = 0 }, now())
    at(1709296200) -- 2024-03-01 12:30:00 UTC
    assert.same({ iso8601 = "2024-03-01T12:30:00Z", unix = 1709296200 }, now())
  end)

  it("applies utc_offset_minutes to the text only", function()
    at(1709296200)
    assert.same({ iso8601 = "2024-03-01T18:00:00+05:30", unix = 1709296200 },
      now { utc_offset_minutes = 330 })
    assert.equal("2024-03-01T07:30:00-05:00", now({ utc_offset_minutes = -300 }).iso8601)
    assert.equal("2024-03-01T03:00:00-09:30", now({ utc_offset_minutes = -570 }).iso8601)
    assert.equal("2024-03-01T12:30:00Z", now({ utc_offset_minutes = 0 }).iso8601)
  end)

  it("crosses day boundaries at the extreme offsets", function()
    at(1709296200)
    assert.equal("2024-03-01T00:30:00-12:00", now({ utc_offset_minutes = -720 }).iso8601)
    assert.equal("2024-03-02T02:30:00+14:00", now({ utc_offset_minutes = 840 }).iso8601)
    at(0)
    assert.equal("1969-12-31T12:00:00-12:00", now({ utc_offset_minutes = -720 }).iso8601)
  end)

  it("narrows the result to the requested format", function()
    at(86400)
    assert.same({ unix = 86400 }, now { format = "unix" })
    assert.same({ iso8601 = "1970-01-02T00:00:00Z" }, now { format = "iso8601" })
  end)

  it("refuses offsets outside -720..840 and non-integers; a whole float is fine", function()
    for _, bad in ipairs { -721, 841, 100000, 1.5, "60" } do
      local r, err = now { utc_offset_minutes = bad }
      assert.is_nil(r)
      assert.equal("utc_offset_minutes must be an integer from -720 to 840", err)
    end
    at(1709296200)
    assert.equal("2024-03-01T13:30:00+01:00", now({ utc_offset_minutes = 60.0 }).iso8601)
  end)

  it("refuses an unknown format with nil, err", function()
    local r, err = now { format = "rfc2822" }
    assert.is_nil(r)
    assert.matches("format must be", err)
  end)
end)
