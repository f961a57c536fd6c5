#!/usr/bin/env bash
# `luamcp new tool` and `luamcp test` from the command line, as a tool author meets them: what
# they write, what they refuse (and that a refusal writes nothing), their exit statuses and
# messages; with CMAKE and BUILD_DIR, also `luamcp test` from an installed layout.
# Usage: commands.sh LUAMCP_BIN SOURCE_DIR [CMAKE BUILD_DIR]
source "$(dirname "$0")/lib.sh"
kit_init "$1" "$2"
CMAKE=${3:-}
BUILD=${4:-}

luacheck_quiet() { luacheck -q --no-color --config "$SRC/.luacheckrc" "$@" >luacheck.out ||
  { sed 's/^/#   /' luacheck.out; false; }; }

# ---- luamcp new tool ----
before=$(tree)
out=$("$BIN" new tool greet --scope greet:use 2>&1); rc=$?
check "new tool exits 0" test $rc -eq 0
check "new tool names the three files" contains "$out" "scripts/greet.lua"
check "the tool is written" test -f scripts/greet.lua
check "its policy is written" test -f policies/greet.lua
check "its spec is written" test -f scripts/spec/greet_spec.lua
check "the policy names the scope" grep -q '"greet:use"' policies/greet.lua
check "the three files are luacheck-clean" luacheck_quiet \
  scripts/greet.lua policies/greet.lua scripts/spec/greet_spec.lua
check "check loads it, guarded by its scope" \
  bash -c "'$BIN' check | grep -qE '^  greet +greet:use'"

# every refusal leaves the tree as it was
refuses() { # refuses NAME EXPECTED-MESSAGE ARGS...
  local name=$1 want=$2
  shift 2
  local before out rc
  before=$(tree)
  out=$("$BIN" "$@" 2>&1); rc=$?
  check "$name: exits non-zero" test $rc -ne 0
  check "$name: says why" contains "$out" "$want"
  check "$name: writes nothing" test "$before" = "$(tree)"
}
cp scripts/greet.lua /tmp/greet.$$ && echo '-- mine' >> scripts/greet.lua
refuses "an existing tool" "scripts/greet.lua already exists: nothing written" new tool greet
check "the existing tool is kept as it was" grep -q -- '-- mine' scripts/greet.lua
rm -f /tmp/greet.$$
rm scripts/greet.lua scripts/spec/greet_spec.lua
refuses "an existing policy alone" "policies/greet.lua already exists" new tool greet
rm policies/greet.lua
echo "-- a spec of mine" > scripts/spec/hello_spec.lua
refuses "an existing spec alone" "scripts/spec/hello_spec.lua already exists" new tool hello
rm scripts/spec/hello_spec.lua
refuses "a name another script declares" \
  "a tool named base64 is already declared at scripts/hash.lua:" new tool base64
refuses "a name with a space" "invalid tool name 'a b'" new tool "a b"
refuses "a name with a slash" "invalid tool name '../x'" new tool "../x"
refuses "a hidden name" "invalid tool name '.x'" new tool .x
refuses "an empty name" "invalid tool name ''" new tool ""
refuses "a name over 128 characters" "invalid tool name" new tool "$(printf 'n%.0s' {1..129})"
refuses "a name with a quote" "invalid tool name" new tool 'a"b'
refuses "a scope with a quote" "invalid scope 'a\"b'" new tool ok --scope 'a"b'
refuses "a scope with a space" "invalid scope 'a b'" new tool ok --scope 'a b'
refuses "a scope with a backslash" "invalid scope" new tool ok --scope 'a\b'
refuses "an empty scope" "invalid scope" new tool ok --scope ''
refuses "new without tool" "give \`new tool NAME" new greet
refuses "new tool without a name" "give \`new tool NAME" new tool
refuses "new tool with two names" "give \`new tool NAME" new tool a b
refuses "a scripts folder that does not exist" "the scripts folder nowhere does not exist" \
  new tool ok --scripts nowhere
refuses "a policies folder that does not exist" "the policies folder nowhere does not exist" \
  new tool ok --policies nowhere
mkdir -p $'nl\nos.exit()'
refuses "a folder name with a line break" "the scripts folder's name has a control character" \
  new tool ok --scripts $'nl\nos.exit()'
rmdir $'nl\nos.exit()'
mv scripts/spec scripts/spec.dir && echo "not a folder" >scripts/spec
refuses "a spec/ that is a file" "cannot write scripts/spec/ok_spec.lua: Not a directory" new tool ok
rm scripts/spec && mv scripts/spec.dir scripts/spec
# a scripts folder without spec/ gets one, and loses it again when the rest fails
mkdir other-scripts other-policies
touch other-policies/ok.lua
refuses "a failure after creating spec/" "other-policies/ok.lua already exists" \
  new tool ok --scripts other-scripts --policies other-policies
check "spec/ made for nothing is removed" test ! -e other-scripts/spec
rm other-policies/ok.lua
out=$("$BIN" new tool ok --scripts other-scripts --policies other-policies 2>&1)
check "other folders: new tool writes there" test -f other-scripts/ok.lua -a -f \
  other-scripts/spec/ok_spec.lua -a -f other-policies/ok.lua
check "the default scope is mcp:tools" grep -q '"mcp:tools"' other-policies/ok.lua
out=$("$BIN" new tool slash --scripts other-scripts/ --policies other-policies// 2>&1)
check "folders given with a trailing slash: paths read as typed" \
  contains "$out" "wrote other-scripts/slash.lua"
rm other-scripts/slash.lua other-policies/slash.lua other-scripts/spec/slash_spec.lua
echo 'this is not Lua' >scripts/broken.lua
out=$("$BIN" new tool greet --scope greet:use 2>&1); rc=$?
check "a scripts folder that does not load is no reason to refuse" test $rc -eq 0
rm scripts/broken.lua

# ---- luamcp test ----
out=$("$BIN" test 2>&1); rc=$?
check "test passes on the new tool's spec" test $rc -eq 0
check "test says what it ran (the folders with specs)" contains "$out" "luamcp test: busted scripts (module"
check "test ran the four examples" contains "$out" "4 successes / 0 failures"
out=$("$BIN" test --scripts other-scripts --policies other-policies 2>&1); rc=$?
check "test on another scripts folder passes" test $rc -eq 0
check "its helpers load that folder's tools" contains "$out" "4 successes / 0 failures"
out=$("$BIN" test -- --output=TAP 2>&1); rc=$?
check "busted options after --: passed on" contains "$out" "ok 1 - greet is declared once"
check "and the folders stay the default" test $rc -eq 0
out=$("$BIN" test scripts/spec -- --filter=policy 2>&1); rc=$?
check "a path and an option" contains "$out" "2 successes / 0 failures"
sed -i 's/"Hello, "/"Howdy, "/' scripts/greet.lua
out=$("$BIN" test 2>&1); rc=$?
check "a failing spec: test exits non-zero" test $rc -ne 0
check "a failing spec: busted says which" contains "$out" "greet_spec.lua"
check "a failing spec: and what it got" contains "$out" "Howdy, Ada!"
out=$("$BIN" test scripts/spec/greet_spec.lua 2>&1); rc=$?
check "test PATH runs that spec" test $rc -ne 0
out=$("$BIN" test --scripts other-scripts --policies other-policies other-scripts/spec 2>&1)
rc=$?
check "test PATH on a passing folder exits 0" test $rc -eq 0
out=$("$BIN" test nowhere 2>&1); rc=$?
check "test on a missing path exits 2" test $rc -eq 2
check "test on a missing path names it" contains "$out" "nowhere: no such file or folder"
out=$("$BIN" test scripts/greet.lua 2>&1); rc=$?
check "test on a file that is not a spec fails" test $rc -ne 0
check "and says so (busted would run nothing)" contains "$out" "no specs (*_spec.lua) in the paths"
mkdir empty
out=$("$BIN" test empty 2>&1); rc=$?
check "test on a folder without specs fails" test $rc -ne 0
check "and says there are no specs" contains "$out" "no specs (*_spec.lua)"
out=$(env PATH=/nonexistent "$BIN" test 2>&1); rc=$?
check "without busted: exits 2" test $rc -eq 2
check "without busted: says how to install it" contains "$out" "busted is not installed"
out=$(env LUA_CPATH="/nonexistent/?.so;;" LUA_CPATH_5_4="/nonexistent/?.so;;" "$BIN" test \
  --scripts other-scripts --policies other-policies 2>&1); rc=$?
check "a LUA_CPATH of the user's does not hide the module" test $rc -eq 0

# ---- an installed layout: bin/luamcp, lib/luamcp/mcp.so, share/luamcp/lua/ ----
if [[ -n $BUILD ]]; then
  "$CMAKE" --install "$BUILD" --prefix "$T/inst" >install.log 2>&1
  check "cmake --install installs the kit" test -f inst/lib/luamcp/mcp.so -a \
    -f inst/share/luamcp/lua/helper.lua -a -f inst/share/luamcp/lua/types/mcp.lua
  out=$(inst/bin/luamcp test --scripts other-scripts --policies other-policies 2>&1); rc=$?
  check "the installed luamcp test passes" test $rc -eq 0
  check "with the installed module" contains "$out" "inst/bin/../lib/luamcp/mcp.so"
  rm inst/share/luamcp/lua/helper.lua
  out=$(inst/bin/luamcp test --scripts other-scripts --policies other-policies 2>&1); rc=$?
  check "an installed layout without the helpers: exits 2" test $rc -eq 2
  check "and says what is missing" contains "$out" "not share/luamcp/lua/helper.lua"
fi
kit_finish
