-- The shipped policies (policies/*.lua) over the shipped tools (scripts/*.lua).
local P = require "policy_helper"

local DEMO_TOOLS = { "base64", "calculate", "current_time", "echo", "hash" }

local SAMPLE_ARGS = {
  base64 = { mode = "encode", text = "hi" },
  calculate = { expression = "1 + 2" },
  current_time = {},
  echo = { text = "hi" },
  hash = { algorithm = "sha256", text = "hi" },
}

describe("policies/", function()
  local policies

  setup(function() policies = P.load "policies" end)

  local alice = P.caller {
    sub = "alice", client_id = "app", iss = "https://idp.example", scopes = { "mcp:tools" },
  }
  local nobody = P.caller { sub = "bob", client_id = "app", iss = "https://idp.example" }
  local other = P.caller { sub = "carol", client_id = "app", scopes = "mcp:admin profile" }
  local stranger = P.caller {
    sub = "mallory", client_id = "elsewhere", iss = "https://other.example",
    scopes = "profile mcp:tools", claims = { dept = "none" },
  }

  it("covers exactly the demo tools, with no rule matching nothing", function()
    assert.same(DEMO_TOOLS, policies.tools)
    assert.same({}, policies:uncovered())
    assert.same({}, policies:unused())
    assert.same({ "mcp:tools" }, policies:scopes())
    for _, tool in ipairs(DEMO_TOOLS) do
      assert.equal(1, policies:rules_for(tool), tool)
      assert.equal("mcp:tools", policies:describe(tool), tool)
    end
  end)

  it("lets a caller holding mcp:tools call every demo tool", function()
    for _, tool in ipairs(DEMO_TOOLS) do
      local d = policies:decide(tool, alice, SAMPLE_ARGS[tool])
      assert.equal("allow", d.decision, tool)
      local root = P.root:gsub("%p", "%%%0")
      assert.truthy(d.rule:match("^" .. root .. "/policies/default%.lua:%d+$"), d.rule)
      assert.is_nil(d.unguarded)
      assert.is_true(policies:allows(tool, stranger, SAMPLE_ARGS[tool]), tool)
    end
  end)

  it("asks a caller without mcp:tools for it (a step-up challenge, not a refusal)", function()
    for _, tool in ipairs(DEMO_TOOLS) do
      for _, who in ipairs { nobody, other } do
        assert.same({ decision = "challenge", scopes = { "mcp:tools" } },
          policies:verdict(tool, who, SAMPLE_ARGS[tool]))
      end
      -- and tools/list does not show it
      assert.is_false(policies:visible(tool, nobody), tool)
    end
    assert.same({}, policies:listed(nobody))
    assert.same(DEMO_TOOLS, policies:listed(alice))
  end)

  it("asks for mcp:tools when authentication is off (no caller)", function()
    for _, tool in ipairs(DEMO_TOOLS) do
      assert.same({ decision = "challenge", scopes = { "mcp:tools" } },
        policies:verdict(tool, nil, SAMPLE_ARGS[tool]))
    end
  end)

  it("hides a tool it does not know, from everyone", function()
    for _, who in ipairs { alice, nobody, stranger } do
      assert.same({ decision = "hidden" }, policies:verdict("rm_rf", who, {}))
      assert.is_false(policies:visible("rm_rf", who))
    end
  end)

  it("hides a tool that no rule covers, and --dev lets it through", function()
    local tools = { "echo", "uncovered_tool" }
    local strict = P.load("policies", { tools = tools })
    assert.same({ "uncovered_tool" }, strict:uncovered())
    assert.same({ decision = "hidden" }, strict:verdict("uncovered_tool", alice))
    assert.same({ "echo" }, strict:listed(alice))
    local dev = P.load("policies", { tools = tools, dev = true })
    local d = dev:decide("uncovered_tool", alice)
    assert.equal("allow", d.decision)
    assert.is_true(d.unguarded)
    -- --dev does not lift the rules of a covered tool
    assert.same({ decision = "challenge", scopes = { "mcp:tools" } }, dev:verdict("echo", nobody))
  end)

  it("logs only the arguments marked safe", function()
    assert.same({ algorithm = "sha256" },
      policies:loggable_args("hash", { algorithm = "sha256", text = "secret" }))
    assert.same({ mode = "encode" },
      policies:loggable_args("base64", { mode = "encode", text = "secret" }))
    assert.is_nil(policies:loggable_args("echo", { text = "secret" }))
  end)
end)
