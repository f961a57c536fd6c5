#!/usr/bin/env bash
# luacheck over scripts/, policies/ and examples/ with the repository's .luacheckrc, whose
# globals must be the sandbox's: the mcp fields it lists are compared with the real module
# (mcp.so), and a script using what the sandbox lacks must be flagged.
# Usage: luacheck.sh SOURCE_DIR MCP_SO_DIR
set -u
SRC=$1
MOD=$2
PASS=0
FAIL=0
check() {
  local name=$1
  shift
  if "$@"; then PASS=$((PASS + 1)); echo "ok - $name"; else FAIL=$((FAIL + 1)); echo "not ok - $name"; fi
}
command -v luacheck >/dev/null || { echo "FATAL: luacheck is required (apt-get install lua-check)" >&2; exit 2; }
cd "$SRC" || exit 2

out=$(luacheck --no-color scripts policies examples 2>&1); rc=$?
[[ $rc -eq 0 ]] || echo "$out" | grep -v 'OK$' | sed 's/^/#   /'
check "scripts/, policies/ and examples/ are clean" test $rc -eq 0

out=$(luacheck --no-color spec/kit/fixtures/outside_sandbox.lua 2>&1); rc=$?
check "a script outside the sandbox is flagged" test $rc -ne 0
for want in "undefined variable 'io'" "undefined field 'execute' of global 'os'" \
  "undefined variable 'debug'" "undefined field 'htpp.get' of global 'mcp'" \
  "undefined field 'dump' of global 'string'" "undefined variable 'dofile'" \
  "undefined variable 'loadstring'"; do
  check "flags: $want" grep -qF "$want" <<<"$out"
done

# Every public field of the real module is in .luacheckrc, and nothing else.
diff=$(LUA_CPATH_5_4="$MOD/?.so;;" lua5.4 - <<'LUA' 2>&1
local mcp = require "mcp"
local env = { stds = {}, files = {} }
assert(loadfile(".luacheckrc", "t", env))()
local function names(t, pre, out)
  for k, v in pairs(t) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then
      out[#out + 1] = pre .. k
      if type(v) == "table" then names(v, pre .. k .. ".", out) end
    end
  end
  return out
end
local function declared(def, pre, out)
  for k, v in pairs(def.fields or {}) do
    if type(k) == "number" then out[#out + 1] = pre .. v
    else out[#out + 1] = pre .. k; declared(v, pre .. k .. ".", out) end
  end
  return out
end
local real, rc = names(mcp, "mcp.", {}), declared(env.stds.luamcp.read_globals.mcp, "mcp.", {})
local set = {}
for _, n in ipairs(rc) do set[n] = (set[n] or 0) + 1 end
for _, n in ipairs(real) do set[n] = (set[n] or 0) - 1 end
local bad = {}
for n, c in pairs(set) do
  if c > 0 then bad[#bad + 1] = "not in mcp.so: " .. n end
  if c < 0 then bad[#bad + 1] = "missing from .luacheckrc: " .. n end
end
table.sort(bad)
io.write(table.concat(bad, "\n"))
LUA
)
[[ -z $diff ]] || echo "$diff" | sed 's/^/#   /'
check ".luacheckrc lists exactly the mcp module's fields" test -z "$diff"
# The LuaLS annotations (spec/lua/types/mcp.lua) cover every public field of the real module.
missing=$(LUA_CPATH_5_4="$MOD/?.so;;" lua5.4 - <<'LUA' 2>&1
local mcp = require "mcp"
local f = assert(io.open("spec/lua/types/mcp.lua"))
local text = f:read("a")
f:close()
local documented = {}
for name in text:gmatch("\nfunction (mcp[%w_.]+)%(") do documented[name] = true end
for name in text:gmatch("\n(mcp[%w_.]+) = ") do documented[name] = true end
local missing = {}
local function walk(t, pre)
  for k, v in pairs(t) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then
      if not documented[pre .. k] then missing[#missing + 1] = pre .. k end
      if type(v) == "table" then walk(v, pre .. k .. ".") end
    end
  end
end
walk(mcp, "mcp.")
table.sort(missing)
io.write(table.concat(missing, " "))
LUA
)
[[ -z $missing ]] || echo "#   not annotated: $missing"
check "spec/lua/types/mcp.lua annotates every field of the mcp module" test -z "$missing"
# ... and what the C side reads or gives: ctx's functions, a tool's fields, a rule's fields.
class_fields() { # CLASS -> the ---@field names of that class in the annotations
  awk -v c="---@class $1" '$0 == c || index($0, c ":") == 1 || index($0, c " ") == 1 { on = 1; next }
    on && /^---@field / { print $2; next } on && !/^---/ { on = 0 }' spec/lua/types/mcp.lua |
    sed 's/?$//' | sort
}
c_names() { # FILE START-PATTERN -> the quoted names of the C array starting there
  sed -n "/$2/,/};/p" "$1" | grep -o '"[A-Za-z_]*"' | tr -d '"' | sort
}
ctx_c=$(sed -n '/ctx_fns\[\] = {/,/};/p' src/tool.c | grep -o '{"[a-z_]*"' | tr -d '{"' | sort)
ctx_lua=$(grep -o '^function Ctx\.[a-z_]*' spec/lua/types/mcp.lua | sed 's/.*\.//' | sort)
check "mcp.Ctx annotates ctx's functions (src/tool.c)" test "$ctx_c" = "$ctx_lua"
check "mcp.ToolDef has the fields mcp.tool reads (src/tool.c)" \
  test "$(c_names src/tool.c 'static const char \*const known\[\] = {"name"')" = "$(class_fields mcp.ToolDef)"
check "mcp.PolicyRule has the fields mcp.policy reads (src/policy.c)" \
  test "$(c_names src/policy.c 'static const char \*const known\[\] = {"tool"')" = "$(class_fields mcp.PolicyRule)"
for f in spec/lua/types/*.lua; do
  check "$f is valid Lua" luac5.4 -p "$f"
done
check ".luarc.json points editors at the annotations" \
  grep -q '"workspace.library": \["spec/lua/types"\]' .luarc.json

echo "# $PASS passed, $FAIL failed"
((FAIL == 0))
