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
echo "# $PASS passed, $FAIL failed"
((FAIL == 0))
