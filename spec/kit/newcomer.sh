#!/usr/bin/env bash
# A newcomer's first tool, end to end, from a copy of the repository's scripts and policies:
# `luamcp serve --dev` on a port of the system's choosing (--listen 127.0.0.1:0), then, while it
# runs, `luamcp new tool greet --scope greet:use`, an edit (sed), `luamcp test`, and calls with
# the token command the start banner printed: allowed with greet:use, refused without it.
# Usage: newcomer.sh LUAMCP_BIN SOURCE_DIR
source "$(dirname "$0")/lib.sh"
kit_init "$1" "$2"
for tool in curl jq; do
  command -v $tool >/dev/null || { echo "FATAL: $tool is required" >&2; exit 2; }
done

"$BIN" serve --dev --listen 127.0.0.1:0 --workers 2 >server.log 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
  grep -q '^  stop:' server.log && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
banner=$(cat server.log)
url=$(sed -n 's|^luamcp .* is serving the tools in scripts at \(http://[^ ]*\)$|\1|p' server.log)
port=${url#http://127.0.0.1:}
port=${port%%/*}
check "the banner names the URL bound" test -n "$url" -a "$port" -gt 0
check "the banner does not name port 0" lacks "$url" ":0/"
token_cmd=$(sed -n 's|^  a token: TOKEN=\$(\(.*\))$|\1|p' server.log)
check "the banner's token command names the port bound" \
  contains "$token_cmd" "token --listen 127.0.0.1:$port"
check "the banner's reload command names the port bound" \
  contains "$banner" "reload --listen 127.0.0.1:$port"

# The banner's own command line, with one more flag: it must work as printed.
token() { eval "$token_cmd $*"; }

# mcp URL TOKEN BODY [SESSION] -> prints "STATUS BODY"; the session id lands in ./sid.
mcp() {
  local args=(-s -o body -D headers -w '%{http_code}' -H 'Content-Type: application/json'
    -H 'Accept: application/json, text/event-stream' -H "Authorization: Bearer $2")
  [[ -n ${4:-} ]] && args+=(-H "Mcp-Session-Id: $4")
  local status
  status=$(curl "${args[@]}" -d "$3" "$1")
  sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: *\([^\r]*\).*/\1/p' headers >sid.new
  [[ -s sid.new ]] && mv sid.new sid
  echo "$status $(cat body)"
}
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",
"capabilities":{},"clientInfo":{"name":"newcomer","version":"1"}}}'
call_greet() { # TOKEN -> "STATUS BODY" of tools/call greet in a fresh session
  mcp "$url" "$1" "$INIT" >/dev/null
  mcp "$url" "$1" '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$(cat sid 2>/dev/null)" \
    >/dev/null
  mcp "$url" "$1" '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"greet",
"arguments":{"name":"Ada"}}}' "$(cat sid 2>/dev/null)"
}

out=$("$BIN" new tool greet --scope greet:use 2>&1); rc=$?
check "new tool greet exits 0" test $rc -eq 0
"$BIN" test scripts/spec/greet_spec.lua >test.out 2>&1
check "the fresh spec passes as written" test $? -eq 0
sed -i 's/"Hello, "/"Howdy, "/' scripts/greet.lua
out=$("$BIN" test 2>&1); rc=$?
check "after editing only the tool, luamcp test fails" test $rc -ne 0
check "and names what the tool now says" contains "$out" "Howdy, Ada!"
sed -i 's/Hello, Ada!/Howdy, Ada!/' scripts/spec/greet_spec.lua
out=$("$BIN" test 2>&1); rc=$?
check "after editing the spec too, luamcp test passes" test $rc -eq 0
check "every spec ran" contains "$out" "4 successes / 0 failures / 0 errors"

# The running server picked up the new files (bounded wait for the reload).
good=$(token --scope greet:use)
check "the printed token command mints a token" test -n "$good"
for _ in $(seq 1 100); do
  res=$(call_greet "$good")
  [[ $res == "200 "*Howdy* ]] && break
  sleep 0.1
done
check "greet answers a caller holding greet:use" contains "$res" '"text":"Howdy, Ada!"'
check "and it is not an error" test "$(jq -r '.result.isError // false' body)" = false

other=$(token --scope mcp:tools)
res=$(call_greet "$other")
check "a caller without greet:use is refused (403)" test "${res%% *}" = 403
check "and told which scope it lacks" grep -qi 'insufficient_scope.*scope="greet:use"' headers
lacks "$res" "Howdy" && check "and greet did not run for it" true
res=$(mcp "$url" "$other" '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":
"echo","arguments":{"text":"hi"}}}' "$(cat sid 2>/dev/null)")
check "the same caller still calls echo (mcp:tools)" contains "$res" '"text":"hi"'
res=$(call_greet "$good")
check "and the next greet:use caller is served" contains "$res" '"text":"Howdy, Ada!"'
reload_cmd=$(sed -n 's|^  reload: .*; or \(.*\)$|\1|p' server.log)
out=$(eval "$reload_cmd" 2>&1); rc=$?
check "the banner's reload command reaches the server" test $rc -eq 0
kit_finish
