-- Specs of access policies, with fake callers, decided by the server's own C code (mcp.so:
-- the policy files load into a private sandboxed Lua state, as in the server, and every
-- decision runs policy_static/policy_decide). In a spec:
--
--   local P = require "policy_helper"
--   local policies = P.load "policies"                 -- a directory, a file, or a list
--   local alice = P.caller { sub = "alice", client_id = "app", scopes = { "mcp:tools" } }
--   assert.same("allow", policies:decide("echo", alice, { text = "hi" }).decision)
--   assert.same({ decision = "challenge", scopes = { "mcp:tools" } },
--               policies:verdict("echo", P.caller {}))
--   assert.same({ decision = "deny", reason = "over the limit" },
--               policies:verdict("transfer", alice, { amount = 1e6 }))
--
-- Policy text inline (written to a temp file, loaded, removed):
--
--   local policies = P.source([[ mcp.policy { tool = "get_*", scopes = "read" } ]],
--                             { tools = { "get_a", "put_b" } })
--
-- A caller of nil is a call with authentication off. Rules bind to the tools of the scripts
-- folder (helper.scripts: scripts/, or the one `luamcp test --scripts DIR` was given) unless
-- opts.tools (a list of names) or opts.scripts (another scripts directory) says otherwise; a
-- tool outside that list is "hidden", as the server answers an unknown tool.

local helper = require "helper"
local lfs = require "lfs"

local P = {}

-- Collapses "." and "x/.." segments, so rules read ".../policies/default.lua:4".
local function normalize(path)
  local absolute = path:sub(1, 1) == "/"
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." and #parts > 0 and parts[#parts] ~= ".." then
      parts[#parts] = nil
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  local joined = table.concat(parts, "/")
  if absolute then return "/" .. joined end
  return joined == "" and "." or joined
end

P.root = normalize(helper.root:sub(1, 1) == "/" and helper.root
  or lfs.currentdir() .. "/" .. helper.root)

-- A path under the repository root unless absolute.
function P.path(p)
  if p:sub(1, 1) == "/" then return normalize(p) end
  return normalize(P.root .. "/" .. p)
end

-- The sorted *.lua files directly in dir, as the server reads a directory.
local function lua_files(dir)
  local names = {}
  for name in lfs.dir(dir) do
    if name:sub(1, 1) ~= "." and #name > 4 and name:sub(-4) == ".lua" then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  for i, name in ipairs(names) do names[i] = dir .. "/" .. name end
  return names
end

-- The sorted names of the tools the scripts of dir (default helper.scripts) declare.
function P.tools_of(dir)
  dir = P.path(dir or helper.scripts)
  local names = {}
  for _, file in ipairs(lua_files(dir)) do
    for name in pairs(helper.load_tools(file)) do names[#names + 1] = name end
  end
  mcp._reset()
  table.sort(names)
  return names
end

-- Budgets by instruction count rather than by the clock, so a runaway check ends the same
-- way on a busy or sanitized machine.
P.limits = { instructions = 10000000, cpu_ms = 60000, memory_mb = 64 }

local Policies = {}
Policies.__index = Policies

-- P.load(what [, opts]) -> policies. what: a policy file, a policies directory (its *.lua, in
-- order), or a list of those. opts: tools (names), scripts (dir), dev (as --dev), lib (dir
-- for require, default the scripts folder's lib/), limits ({ instructions, cpu_ms,
-- memory_mb }), quiet (no log lines from failing checks). Load errors raise, one
-- "file:line: what" per line.
function P.load(what, opts)
  opts = opts or {}
  if type(what) == "string" then what = { what } end
  local files = {}
  for _, p in ipairs(what) do
    p = P.path(p)
    if lfs.attributes(p, "mode") == "directory" then
      for _, f in ipairs(lua_files(p)) do files[#files + 1] = f end
    else
      files[#files + 1] = p
    end
  end
  local scripts = opts.scripts and P.path(opts.scripts) or helper.scripts
  local tools = opts.tools or P.tools_of(scripts)
  local set = mcp._load_policies {
    files = files,
    tools = tools,
    dev = opts.dev,
    quiet = opts.quiet,
    lib = P.path(opts.lib or scripts .. "/lib"),
    limits = opts.limits or P.limits,
  }
  return setmetatable({ set = set, tools = tools, files = files }, Policies)
end

local function tempdir()
  local name = os.tmpname()
  os.remove(name)
  assert(lfs.mkdir(name))
  return name
end

-- P.source(text [, opts]) -> policies, from policy text instead of files. text is one file's
-- text (named opts.name, default "policy.lua") or { [file name] = text, ... } for several
-- (loaded in name order, as the server does). Rules read "<tmp>/<name>:<line>".
function P.source(text, opts)
  opts = opts or {}
  if type(text) == "string" then text = { [opts.name or "policy.lua"] = text } end
  local dir = tempdir()
  for name, body in pairs(text) do
    local f = assert(io.open(dir .. "/" .. name, "w"))
    f:write(body)
    f:close()
  end
  local ok, policies = pcall(P.load, dir, opts)
  for name in pairs(text) do os.remove(dir .. "/" .. name) end
  lfs.rmdir(dir)
  if not ok then error(policies, 0) end
  return policies
end

local CALLER_FIELDS = {
  sub = true, subject = true, client_id = true, iss = true, issuer = true, scopes = true,
  claims = true, exp = true, expires_at = true,
}

-- P.caller{ sub, client_id, iss, scopes (a list or "a b"), claims, exp } -> a verified caller
-- as the server makes it from a token: claims holds the whole payload, so sub, iss,
-- client_id, scope and exp appear there too unless claims gives them.
function P.caller(t)
  t = t or {}
  for k in pairs(t) do
    if not CALLER_FIELDS[k] then
      error("P.caller: unknown field '" .. tostring(k) .. "' (fields: sub, client_id, iss, "
        .. "scopes, claims, exp)", 2)
    end
  end
  local scopes = t.scopes or {}
  if type(scopes) == "string" then
    local list = {}
    for s in scopes:gmatch("%S+") do list[#list + 1] = s end
    scopes = list
  end
  local claims = {}
  for k, v in pairs(t.claims or {}) do claims[k] = v end
  local sub, iss = t.sub or t.subject, t.iss or t.issuer
  local exp = t.exp or t.expires_at or os.time() + 3600
  if claims.sub == nil then claims.sub = sub end
  if claims.iss == nil then claims.iss = iss end
  if claims.client_id == nil then claims.client_id = t.client_id end
  if claims.exp == nil then claims.exp = exp end
  if claims.scope == nil and #scopes > 0 then claims.scope = table.concat(scopes, " ") end
  return {
    subject = sub, client_id = t.client_id, issuer = iss, expires_at = exp,
    scopes = scopes, claims = claims,
  }
end

-- The whole decision of tools/call: { decision = "allow"|"hidden"|"challenge"|"deny",
-- reason, rule = "file:line" (when a rule decided), scopes = { ... } (challenge),
-- unguarded = true (allowed only by dev) }.
function Policies:decide(tool, caller, args)
  return self.set:decide(tool, caller, args)
end

-- The decision in short, for assert.same: { decision } plus scopes for a challenge and
-- reason for a deny.
function Policies:verdict(tool, caller, args)
  local d = self.set:decide(tool, caller, args)
  local v = { decision = d.decision }
  if d.decision == "challenge" then v.scopes = d.scopes end
  if d.decision == "deny" then v.reason = d.reason end
  return v
end

function Policies:allows(tool, caller, args)
  return self.set:decide(tool, caller, args).decision == "allow"
end

-- The decision of the declarative part alone (no check runs), as tools/list makes it.
function Policies:static(tool, caller)
  return self.set:static(tool, caller)
end

-- Whether tools/list shows the tool to caller: only when the declarative part allows (a
-- caller lacking a scope does not see the tool; a check may still deny the call).
function Policies:visible(tool, caller)
  return self.set:static(tool, caller).decision == "allow"
end

-- The tools tools/list shows to caller, sorted.
function Policies:listed(caller)
  local names = {}
  for _, name in ipairs(self.tools) do
    if self:visible(name, caller) then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

function Policies:rules_for(tool) return self.set:rules_for(tool) end
function Policies:describe(tool) return self.set:describe(tool) end
function Policies:scopes() return self.set:scopes() end
function Policies:loggable_args(tool, args) return self.set:loggable_args(tool, args) end
-- "file:line" of the rules that match no tool (a typo, usually).
function Policies:unused() return self.set:unused() end
-- The tools no rule covers: nobody may call them (but under dev).
function Policies:uncovered() return self.set:uncovered() end
function Policies:size() return self.set:size() end

package.loaded.policy_helper = P
return P
