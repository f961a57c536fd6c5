---@meta _
-- What the sandbox changes in Lua's standard library (build_base in src/vm.c): .luarc.json
-- turns off io, os, debug and package, and this gives back the part of os a script has, and
-- the global mcp. string.dump is gone too (LuaLS cannot remove one function; luacheck flags it).

---The clock only.
os = {}
---@param t? table
---@return integer
function os.time(t) end
---@return number
function os.clock() end
---@param format? string
---@param time? integer
---@return string|osdate
function os.date(format, time) end
---@param t2 integer
---@param t1 integer
---@return number
function os.difftime(t2, t1) end

---The mcp module, a global in every script and policy.
mcp = require "mcp"
