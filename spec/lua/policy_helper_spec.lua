-- The policy helper itself (spec/lua/policy_helper.lua over mcp._load_policies in mcp.so):
-- the decisions it reports are the server's, for policy text written to temp files.
local P = require "policy_helper"

local function source(text, tools, opts)
  opts = opts or {}
  opts.tools = tools
  if opts.quiet == nil then opts.quiet = true end
  return P.source(text, opts)
end

local alice = P.caller {
  sub = "alice", client_id = "app", iss = "https://idp.example", scopes = { "read", "write" },
  claims = { dept = "eng", groups = { "staff", "admins" }, level = 2 },
}
local bob = P.caller { sub = "bob", client_id = "cli", iss = "https://idp.example",
  scopes = "read", claims = { dept = "ops", groups = "staff", level = 1 } }
local nobody = P.caller { sub = "eve", client_id = "app", iss = "https://idp.example" }

describe("policy_helper", function()
  describe("P.caller", function()
    it("makes the caller a token would: the claims hold sub, iss, client_id, scope, exp",
      function()
        local c = P.caller { sub = "alice", client_id = "app", iss = "https://i",
          scopes = "a b", exp = 2000000000, claims = { dept = "eng" } }
        assert.same({
          subject = "alice", client_id = "app", issuer = "https://i", expires_at = 2000000000,
          scopes = { "a", "b" },
          claims = { sub = "alice", client_id = "app", iss = "https://i", scope = "a b",
            exp = 2000000000, dept = "eng" },
        }, c)
      end)

    it("refuses a field it does not know (a typo would weaken the spec)", function()
      assert.has_error(function() P.caller { scope = "a" } end,
        "P.caller: unknown field 'scope' (fields: sub, client_id, iss, scopes, claims, exp)")
    end)

    it("is what a check sees", function()
      local policies = source([[
mcp.policy { tool = "who", check = function(caller, tool, args, ctx)
  return mcp.deny(table.concat({ caller.subject, caller.client_id, caller.issuer,
    tostring(caller.expires_at), caller.claims.sub, caller.claims.scope, caller.claims.dept,
    table.concat(caller.scopes:list(), ","), tostring(caller.scopes:has("write")),
    tostring(caller.scopes:has("admin")), tostring(caller.scopes:any { "admin", "read" }),
    tostring(caller.scopes:all { "read", "admin" }), tool, ctx.tool, tostring(ctx.policy) },
    "|"))
end }
]], { "who" })
      local c = P.caller { sub = "alice", client_id = "app", iss = "https://i",
        scopes = { "read", "write" }, exp = 2000000000, claims = { dept = "eng" } }
      assert.same({ decision = "deny", reason = "alice|app|https://i|2000000000|alice|read write|"
        .. "eng|read,write|true|false|true|false|who|who|true" }, policies:verdict("who", c))
    end)
  end)

  describe("declarative rules", function()
    local policies
    setup(function()
      policies = source([[
mcp.policy { tool = "aa", scopes = { "read", "write" } }
mcp.policy { tool = "aa", scopes = { "write", "admin" } }
mcp.policy { tool = "bb", any_scopes = { "write", "admin" } }
mcp.policy { tool = "get_*", scopes = "read" }
mcp.policy { tool = "?", scopes = "short" }
mcp.policy { tool = "nothing_*" }
mcp.policy { tool = "cc", issuers = "https://idp.example", client_ids = { "app" } }
mcp.policy { tool = "dd", claims = { dept = "eng", groups = "admins", level = { 2, 3 } } }
mcp.policy { tool = "open" }
]], { "aa", "bb", "get_x", "get_y", "get", "x", "cc", "dd", "open", "lonely" })
    end)

    it("reports coverage: uncovered tools and rules matching nothing", function()
      assert.same({ "get", "lonely" }, policies:uncovered())
      local unused = policies:unused()
      assert.equal(1, #unused)
      assert.truthy(unused[1]:match("/policy%.lua:6$"), unused[1])
      assert.same({ "read", "write", "admin", "short" }, policies:scopes())
      assert.equal("read", policies:describe("get_x"))
      assert.equal("(any of: write admin)", policies:describe("bb"))
      assert.equal("(no scope)", policies:describe("open"))
      assert.equal(9, policies:size())
    end)

    it("composes: every matching rule must allow; a challenge names all their scopes",
      function()
        assert.equal(2, policies:rules_for("aa"))
        local d = policies:decide("aa", alice)
        assert.same({ decision = "challenge", reason = "insufficient scope",
          scopes = { "read", "write", "admin" }, rule = d.rule }, d)
        assert.truthy(d.rule:match("/policy%.lua:2$"), d.rule)
        assert.same({ decision = "challenge", scopes = { "read", "write", "admin" } },
          policies:verdict("aa", nobody))
        local admin = P.caller { scopes = "read write admin" }
        d = policies:decide("aa", admin)
        assert.equal("allow", d.decision)
        assert.equal("scopes and conditions met", d.reason)
      end)

    it("needs one of any_scopes, and asks for the first", function()
      assert.same({ decision = "allow" }, policies:verdict("bb", alice))
      assert.same({ decision = "allow" }, policies:verdict("bb", P.caller { scopes = "admin" }))
      assert.same({ decision = "challenge", scopes = { "write" } }, policies:verdict("bb", bob))
    end)

    it("matches globs: * any run, ? one character", function()
      assert.equal(1, policies:rules_for("get_x"))
      assert.equal(1, policies:rules_for("get_y"))
      assert.equal(0, policies:rules_for("get"))
      assert.equal(1, policies:rules_for("x"))
      assert.same({ decision = "allow" }, policies:verdict("get_x", bob))
      assert.same({ decision = "challenge", scopes = { "read" } },
        policies:verdict("get_y", nobody))
      assert.same({ decision = "hidden" }, policies:verdict("get", alice))
      assert.same({ decision = "challenge", scopes = { "short" } }, policies:verdict("x", alice))
    end)

    it("hides a tool from a caller whose issuer, client or claims do not match", function()
      assert.same({ decision = "allow" }, policies:verdict("cc", alice))
      local d = policies:decide("cc", bob)
      assert.equal("hidden", d.decision)
      assert.equal("client not allowed", d.reason)
      local elsewhere = P.caller { client_id = "app", iss = "https://other.example" }
      assert.equal("issuer not allowed", policies:decide("cc", elsewhere).reason)
      assert.is_false(policies:visible("cc", bob))
      -- tools/list: what the declarative part allows (a missing scope hides it there too)
      assert.same({ "bb", "cc", "dd", "get_x", "get_y", "open" }, policies:listed(alice))
      assert.same({ "get_x", "get_y", "open" }, policies:listed(bob))

      assert.same({ decision = "allow" }, policies:verdict("dd", alice)) -- groups is a list
      assert.equal("hidden", policies:decide("dd", bob).decision)
      local c = P.caller { claims = { dept = "ops", groups = "admins", level = 2 } }
      assert.equal("claim dept does not match", policies:decide("dd", c).reason)
      c = P.caller { claims = { dept = "eng", groups = "admins", level = 3 } }
      assert.same({ decision = "allow" }, policies:verdict("dd", c)) -- a string claim
      c = P.caller { claims = { dept = "eng", groups = "admins", level = 4 } }
      assert.equal("claim level does not match", policies:decide("dd", c).reason)
      c = P.caller { claims = { dept = "eng", level = 2 } }
      assert.equal("claim groups does not match", policies:decide("dd", c).reason)
    end)

    it("without authentication: no-scope rules allow, scoped rules challenge, conditions hide",
      function()
        assert.same({ decision = "allow" }, policies:verdict("open", nil))
        assert.same({ decision = "challenge", scopes = { "read" } },
          policies:verdict("get_x", nil))
        assert.same({ decision = "hidden" }, policies:verdict("cc", nil))
      end)

    it("hides what no rule covers, and unknown tools; dev allows the uncovered", function()
      local d = policies:decide("lonely", alice)
      assert.same({ decision = "hidden", reason = "no policy covers this tool" }, d)
      assert.same({ decision = "hidden", reason = "unknown tool" }, policies:decide("zz", alice))
      local dev = source("mcp.policy { tool = 'a', scopes = 'read' }", { "a", "lonely" },
        { dev = true })
      d = dev:decide("lonely", nil)
      assert.same({ decision = "allow", reason = "no policy covers this tool (--dev)",
        unguarded = true }, d)
      assert.same({ decision = "challenge", scopes = { "read" } }, dev:verdict("a", nil))
    end)
  end)

  describe("checks", function()
    local policies
    setup(function()
      policies = source([[
local runs = 0
mcp.policy { tool = "allow", check = function() return mcp.allow() end }
mcp.policy { tool = "yes", check = function() return true end }
mcp.policy { tool = "deny", check = function() return mcp.deny("not today") end }
mcp.policy { tool = "no", check = function() return false, "no way" end }
mcp.policy { tool = "no_reason", check = function() return false end }
mcp.policy { tool = "step_up", check = function() return mcp.challenge({ "admin" }) end }
mcp.policy { tool = "step_up1", check = function() return mcp.challenge("admin", "why") end }
mcp.policy { tool = "nothing", check = function() end }
mcp.policy { tool = "boom", check = function() error("boom") end }
mcp.policy { tool = "loop", check = function() while true do end end }
mcp.policy { tool = "hog", check = function()
  local t = {} for i = 1, 1e9 do t[i] = string.rep("x", 65536) .. i end
end }
mcp.policy { tool = "transfer", scopes = "write", log_args = "currency",
  check = function(caller, tool, args)
    if type(args.amount) ~= "number" then return mcp.deny("amount required") end
    local limit = caller.claims.dept == "eng" and 1000 or 100
    if args.amount > limit then return mcp.deny("over the limit of " .. limit) end
    if args.amount > 500 and not caller.scopes:has("admin") then
      return mcp.challenge("admin", "large transfers need admin")
    end
    return true
  end }
mcp.policy { tool = "counted", scopes = "write", check = function()
  runs = runs + 1
  return true
end }
mcp.policy { tool = "counted", any_scopes = { "admin", "root" } }
mcp.policy { tool = "runs", check = function() return mcp.deny(tostring(runs)) end }
mcp.policy { tool = "two", check = function() return true end }
mcp.policy { tool = "two", check = function() return mcp.deny("the second said no") end }
]], { "allow", "yes", "deny", "no", "no_reason", "step_up", "step_up1", "nothing", "boom",
        "loop", "hog", "transfer", "counted", "runs", "two" },
        { limits = { instructions = 2000000, cpu_ms = 60000, memory_mb = 16 } })
    end)

    it("reads what a check returns", function()
      local d = policies:decide("allow", alice)
      assert.equal("allow", d.decision)
      assert.equal("check allowed", d.reason)
      assert.truthy(d.rule:match("/policy%.lua:2$"), d.rule)
      assert.same({ decision = "allow" }, policies:verdict("yes", alice))
      assert.same({ decision = "deny", reason = "not today" }, policies:verdict("deny", alice))
      assert.same({ decision = "deny", reason = "no way" }, policies:verdict("no", alice))
      assert.same({ decision = "deny", reason = "denied by policy" },
        policies:verdict("no_reason", alice))
      assert.same({ decision = "challenge", scopes = { "admin" } },
        policies:verdict("step_up", alice))
      d = policies:decide("step_up1", alice)
      assert.same({ "admin" }, d.scopes)
      assert.equal("why", d.reason)
      assert.same({ decision = "deny", reason = "the policy check returned no decision" },
        policies:verdict("nothing", alice))
      -- tools/list runs no check: a tool whose check denies is still listed
      assert.is_true(policies:visible("deny", alice))
      assert.same({ decision = "allow", reason = "scopes and conditions met", rule = d.rule:gsub(
        ":%d+$", ":9") }, policies:static("nothing", alice))
    end)

    it("denies when a check fails, runs away or eats memory, and goes on", function()
      assert.same({ decision = "deny", reason = "the policy check failed (error)" },
        policies:verdict("boom", alice))
      assert.same({ decision = "deny", reason = "the policy check failed (budget)" },
        policies:verdict("loop", alice))
      assert.same({ decision = "deny", reason = "the policy check failed (memory)" },
        policies:verdict("hog", alice))
      assert.same({ decision = "allow" }, policies:verdict("allow", alice))
    end)

    it("decides on the arguments and the caller", function()
      local eng_admin = P.caller { scopes = "write admin", claims = { dept = "eng" } }
      local ops_writer = P.caller { scopes = "write", claims = { dept = "ops" } }
      assert.same({ decision = "allow" }, policies:verdict("transfer", alice, { amount = 10 }))
      assert.same({ decision = "challenge", scopes = { "admin" } },
        policies:verdict("transfer", alice, { amount = 600 }))
      assert.same({ decision = "allow" }, policies:verdict("transfer", eng_admin, { amount = 600 }))
      assert.same({ decision = "deny", reason = "over the limit of 1000" },
        policies:verdict("transfer", eng_admin, { amount = 5000 }))
      assert.same({ decision = "deny", reason = "over the limit of 100" },
        policies:verdict("transfer", ops_writer, { amount = 101 }))
      assert.same({ decision = "deny", reason = "amount required" },
        policies:verdict("transfer", alice, {}))
      assert.same({ decision = "deny", reason = "amount required" },
        policies:verdict("transfer", alice))
      -- the declarative part first: without write, a challenge for it
      assert.same({ decision = "challenge", scopes = { "write" } },
        policies:verdict("transfer", bob, { amount = 1 }))
      assert.same({ currency = "EUR" },
        policies:loggable_args("transfer", { amount = 1, currency = "EUR", iban = "x" }))
      assert.equal("write +check", policies:describe("transfer"))
    end)

    it("does not run a check when the declarative part already refuses", function()
      local writer = P.caller { scopes = "write" }
      local root = P.caller { scopes = "write root" }
      assert.same({ decision = "deny", reason = "0" }, policies:verdict("runs", nil))
      assert.same({ decision = "challenge", scopes = { "write", "admin" } },
        policies:verdict("counted", writer))
      assert.equal("allow", policies:static("counted", root).decision) -- tools/list
      assert.same({ decision = "deny", reason = "0" }, policies:verdict("runs", nil))
      assert.same({ decision = "allow" }, policies:verdict("counted", root))
      assert.same({ decision = "deny", reason = "1" }, policies:verdict("runs", nil))
    end)

    it("needs every matching rule's check to allow", function()
      local d = policies:decide("two", alice)
      assert.equal("the second said no", d.reason)
      assert.truthy(d.rule:match("/policy%.lua:32$"), d.rule)
    end)
  end)

  describe("loading", function()
    it("names file and line of a broken rule", function()
      local ok, err = pcall(source, "\nmcp.policy { tool = 'a', scope = 'read' }", { "a" })
      assert.is_false(ok)
      assert.truthy(err:match("/policy%.lua:2: unknown field 'scope'"), err)
      ok, err = pcall(source, "mcp.policy { scopes = 'read' }", { "a" })
      assert.truthy(err:match("/policy%.lua:1: a policy needs 'tool'"), err)
      ok, err = pcall(source, "mcp.policy { tool = 'a', check = 'yes' }", { "a" })
      assert.truthy(err:match("'check' must be a function"), err)
    end)

    it("reports every broken file", function()
      local ok, err = pcall(source, {
        ["a.lua"] = "mcp.policy { tool = 'a', scopes = { 1 } }",
        ["b.lua"] = "\n\nerror('broken')",
      }, { "a" })
      assert.is_false(ok)
      assert.truthy(err:match("/a%.lua:1: 'scopes' must be a string or a list of strings"), err)
      assert.truthy(err:match("/b%.lua:3: broken"), err)
    end)

    it("keeps tools out of policy files", function()
      local ok, err = pcall(source, "mcp.tool { name = 'x', description = 'd', "
        .. "inputSchema = { type = 'object' }, handler = function() end }", { "a" })
      assert.is_false(ok)
      assert.truthy(err:match("mcp%.tool can only be called while scripts are loading"), err)
    end)

    it("loads policy files into the sandbox, not into busted's Lua", function()
      local ok, err = pcall(source, "io.open('/etc/passwd')", { "a" })
      assert.is_false(ok)
      assert.truthy(err:match("attempt to index a nil value %(global 'io'%)"), err)
      ok, err = pcall(source, "while true do end", { "a" },
        { limits = { instructions = 100000, cpu_ms = 60000 } })
      assert.is_false(ok)
      assert.truthy(err:match("loading exceeded its budget"), err)
    end)

    it("takes several files in name order", function()
      local policies = source({
        ["10-base.lua"] = "mcp.policy { tool = '*', scopes = 'base' }",
        ["20-extra.lua"] = "mcp.policy { tool = 'a', scopes = 'extra' }",
      }, { "a", "b" })
      assert.same({ decision = "challenge", scopes = { "base", "extra" } },
        policies:verdict("a", nil))
      assert.same({ "base", "extra" }, policies:scopes())
    end)

    it("checks its arguments", function()
      local policies = source("mcp.policy { tool = 'a' }", { "a" })
      assert.has_error(function() policies:decide("a", { scope = "x" }) end,
        "caller: unknown field 'scope' (fields: subject, client_id, issuer, expires_at, "
        .. "scopes, claims)")
      assert.has_error(function() policies:decide("a", { scopes = { 1 } }) end,
        "caller.scopes must be a list of strings (item 1 is not)")
      assert.has_error(function() policies:decide("a", nil, { 1, 2 }) end,
        "args must be an object")
      assert.has_error(function() policies:decide("a", nil, { f = print }) end)
      assert.has_error(function() mcp._load_policies { tools = { "a" } } end,
        "'files' must list the policy files to load")
      -- nothing above leaked or broke it
      assert.same({ decision = "allow" }, policies:verdict("a", nil))
    end)
  end)

  describe("mcp.policy in busted's own Lua (no host)", function()
    it("validates a rule and gives it back", function()
      local def = { tool = "a", scopes = "x" }
      assert.equal(def, mcp.policy(def))
      assert.has_error(function() mcp.policy { tool = "a", scope = "x" } end)
      mcp._reset()
    end)
  end)
end)
