-- The helpers work for any scripts folder, not only scripts/: tools whose require reaches
-- their own folder's lib/, and policies bound to that folder's tools.
local helper = require "helper"
local P = require "policy_helper"

describe("helpers on another scripts folder (examples/strava)", function()
  it("load a script whose require needs its own lib/", function()
    local tools = helper.load_tools("examples/strava/scripts/strava.lua")
    assert.is_function(tools.get_activity.handler)
  end)

  it("forget that folder's modules afterwards", function()
    helper.load_tools("examples/strava/scripts/strava.lua")
    assert.is_nil(package.loaded.strava_api)
    assert.is_false((pcall(require, "strava_api")))
  end)

  it("still raise a script's own error, with its line", function()
    assert.has_error(function() helper.load_tools("spec/kit/fixtures/does_not_exist.lua") end)
  end)

  it("bind that folder's policies to that folder's tools", function()
    local policies = P.load("examples/strava/policies", { scripts = "examples/strava/scripts" })
    assert.same(P.tools_of("examples/strava/scripts"), policies.tools)
    assert.same({}, policies:uncovered())
    local reader = P.caller { sub = "a", client_id = "app",
      scopes = { "mcp.example.com/strava:get_athlete" } }
    assert.is_true(policies:allows("get_athlete", reader, {}))
  end)

  it("default to helper.scripts, the repository's scripts/ under ctest", function()
    assert.equal(helper.root .. "/scripts", helper.scripts)
    assert.same({ "base64", "calculate", "current_time", "echo", "hash" }, P.tools_of())
  end)
end)
