-- Run by busted (--helper) once, before any spec. Makes the world a script sees: the global
-- `mcp` from mcp.so, require of the scripts' lib/ modules, and a fake ctx. Specs get these
-- functions with `local helper = require "helper"`.
--
-- `luamcp test` runs busted with this helper, mcp.so on the C path and the folders in
-- LUAMCP_TEST_ROOT (where relative paths start: the directory it ran in), LUAMCP_TEST_SCRIPTS
-- and LUAMCP_TEST_POLICIES. Without them (ctest's busted.*) they are this repository's.

local luassert = require "luassert"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local function from_env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local root = from_env("LUAMCP_TEST_ROOT", here .. "/../..")

-- A path under root, for paths that are not absolute.
local function under_root(p)
  if p:sub(1, 1) == "/" then return p end
  return root .. "/" .. p
end

local scripts = under_root(from_env("LUAMCP_TEST_SCRIPTS", "scripts"))
local policies = under_root(from_env("LUAMCP_TEST_POLICIES", "policies"))

package.path = table.concat({ scripts .. "/lib/?.lua", here .. "/?.lua", package.path }, ";")

local ok, mod = pcall(require, "mcp")
if not ok then
  error("cannot load the mcp module (mcp.so): run the specs with `luamcp test` (it finds the "
    .. "module it was built with), or `ctest -R busted` in the build directory\n"
    .. tostring(mod), 0)
end
mcp = mod -- luacheck: ignore (scripts see mcp as a global, as in the server)

local M = {}

M.root = root
-- The scripts and policies folders the specs are about (absolute, or under root).
M.scripts = scripts
M.policies = policies

-- A path under root, for paths that are not absolute.
M.path = under_root

-- The path of a file in the scripts folder: helper.script "greet.lua".
function M.script(name) return scripts .. "/" .. name end

-- Loads one script file on its own and returns { [name] = definition } of its tools. Its
-- require finds the modules of its own folder's lib/ first, as in the server, and what it
-- required is forgotten afterwards (another folder's lib may have a module of the same name).
function M.load_tools(path)
  path = M.path(path)
  local saved_path, before = package.path, {}
  for name in pairs(package.loaded) do before[name] = true end
  package.path = (path:match("^(.*)/[^/]*$") or ".") .. "/lib/?.lua;" .. saved_path
  mcp._reset()
  local loaded, err = pcall(dofile, path)
  package.path = saved_path
  for name in pairs(package.loaded) do
    if not before[name] then package.loaded[name] = nil end
  end
  if not loaded then error(err, 0) end
  return mcp._loaded_tools()
end

local LOG_LEVELS = { debug = true, info = true, notice = true, warning = true, error = true }

-- A ctx as the server passes it to a handler. What the handler logs and reports lands in
-- ctx.logs and ctx.progress_reports; fields in overrides replace the defaults.
function M.ctx(overrides)
  local ctx = {
    request_id = 1,
    tool = "test",
    deadline = os.time() + 30,
    auth = nil,
    logs = {},
    progress_reports = {},
  }
  function ctx.remaining_ms() return 30000 end
  function ctx.log(level, message)
    if not LOG_LEVELS[level] then error("ctx.log: unknown level '" .. tostring(level) .. "'", 2) end
    ctx.logs[#ctx.logs + 1] = { level = level, message = message }
  end
  function ctx.progress(progress, total, message)
    ctx.progress_reports[#ctx.progress_reports + 1] =
      { progress = progress, total = total, message = message }
  end
  for k, v in pairs(overrides or {}) do ctx[k] = v end
  return ctx
end

-- The sorted names of a { [name] = definition } table.
function M.names(tools)
  local names = {}
  for name in pairs(tools) do names[#names + 1] = name end
  table.sort(names)
  return names
end

-- Calls tool `name` from `tools` the way the server would; returns everything the handler
-- returned.
function M.call(tools, name, args, ctx)
  local def = tools[name]
  if def == nil then error("no tool named '" .. name .. "'", 2) end
  return def.handler(args, ctx or M.ctx { tool = name })
end

-- The things every tool shipped in scripts/ promises; see the brief for the defaults.
function M.assert_well_formed(def)
  luassert.is_string(def.name)
  luassert.is_truthy(def.name:match("^[A-Za-z0-9_.-]+$"), "bad tool name " .. def.name)
  luassert.is_string(def.title)
  luassert.is_string(def.description)
  luassert.is_true(#def.description >= 20, def.name .. ": description is too short")
  luassert.is_function(def.handler)
  luassert.equal("object", def.inputSchema.type)
  luassert.equal(false, def.inputSchema.additionalProperties)
  for _, field in ipairs(def.inputSchema.required or {}) do
    luassert.is_table(def.inputSchema.properties[field], def.name .. ": required " .. field)
  end
  for field, schema in pairs(def.inputSchema.properties) do
    luassert.is_string(schema.description, def.name .. ": no description for " .. field)
  end
  if def.outputSchema ~= nil then luassert.equal("object", def.outputSchema.type) end
  luassert.is_true(def.annotations.readOnlyHint)
  luassert.is_false(def.annotations.openWorldHint)
end

package.loaded.helper = M
return M
