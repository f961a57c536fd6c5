#!/usr/bin/env bash
# luamcp beside the official TypeScript MCP SDK server (bench/sdk/server.mjs), driven by the same
# wrk in the same run, row after row (luamcp, then the SDK, then the SDK under node:cluster),
# so a noisy machine slows both alike. Called by bench/run.sh (`make bench`); alone:
#
#   bench/sdk/compare.sh [path/to/luamcp]      DURATION=10s CONNS=32 SDK_WORKERS=2 by default
#
# What is the same on both sides, so the ratio means something:
# - the machine and the client: wrk -t$WRK_THREADS (1) -c$CONNS -d$DURATION --latency, keep-alive,
#   the same Lua scripts (../echo.lua; tools_list.lua here, which adds the token and the Accept
#   header the SDK insists on), the same request bodies (one prepared request, or the next of
#   2,000 tokens per request for the fresh-token rows); each server gets a 1 s wrk warm-up first
#   (Node's JIT, the SDK's first JWKS fetch);
# - the tokens: the same files, minted by `luamcp token` from luamcp's --dev issuer (RS256,
#   2048-bit RSA), sent to both servers;
# - the keys: the SDK's verifier fetches that luamcp's JWKS (<issuer>/.well-known/jwks.json)
#   with jose's createRemoteJWKSet, so both check the same signature with the same public key;
# - the checks: both verify the RS256 signature, iss, aud (the resource), exp/nbf/iat with a
#   60 s leeway and the typ header; both apply the scope rule of policies/default.lua (a call
#   of echo needs mcp:tools; the SDK in a middleware after requireBearerAuth);
# - the tools: luamcp serves scripts/echo.lua alone (a copy in a scratch folder), the SDK an
#   echo with the same name, schema, annotations and answer, so tools/list answers carry one
#   tool each (about 400 bytes); the concurrency rows add a `slow` tool on both sides;
# - stateless on both: luamcp --stateless; the SDK as its docs show it (a new McpServer and
#   StreamableHTTPServerTransport per request, sessionIdGenerator undefined, JSON responses).
# - floor rows: bench/floor_server, an epoll loop per core (and then one thread alone) that
#   answers the same request with luamcp's bytes and does nothing else, so the kernel's loopback
#   TCP and wrk on the same cores are all it measures; the one-thread floor's req/s over the
#   SDK's is the largest ratio a server on one core could show here.
# What differs, and how it leans:
# - Node runs JavaScript on one thread, so "SDK" is one process and "SDK cluster xN" the same
#   server under node:cluster with N workers (SDK_WORKERS=0 skips those rows). Like with like:
#   the SDK's one process is compared with luamcp on one worker (--workers 1: a core for the
#   server, one for wrk; a second luamcp with a dev issuer of its own), the cluster with luamcp
#   on every core (its default, sharing both cores with wrk, which on this 2-core machine is
#   slower than one worker);
# - the SDK gets its best documented setup: one JSON Schema validator shared by the
#   per-request McpServers (its default, an Ajv instance built per McpServer, costs it about
#   half its req/s here; SDK_AJV_PER_REQUEST=1 measures that default instead);
# - luamcp caches a verified token (auth.cache_entries) and the SDK has no cache, so the
#   "reused token" rows compare luamcp's cache with an RS256 verification per request on the
#   SDK; the "fresh token" rows turn luamcp's cache off (cache_entries = 0) and cycle 2,000
#   tokens, so both verify a signature on every request;
# - luamcp also writes an audit record per call (to a file) and logs; the SDK server does not;
# - the concurrency rows (bench/concurrency.mjs: 1,000 calls at once of a tool that waits for a
#   1 s backend) run without auth on both sides, as concurrency.mjs runs luamcp; the SDK's slow
#   tool is given the backend's URL, luamcp's has it in its script;
# - RSS is the peak (VmHWM) of the server so far; for the cluster rows the sum over the primary
#   and its workers.
set -euo pipefail
bin=$(realpath "${1:-./build/luamcp}")
duration=${DURATION:-10s}
conns=${CONNS:-32}
threads=${WRK_THREADS:-1}
workers=${SDK_WORKERS:-2}
sdk=$(cd "$(dirname "$0")" && pwd)
bench=$(dirname "$sdk")
tmp=$(mktemp -d)
servers=() # pids to stop at exit
cleanup() {
    for p in "${servers[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "bench/sdk: node and npm are needed for the comparison with the TypeScript SDK; skipped"
    exit 0
fi
if [ ! -f "$sdk/node_modules/.package-lock.json" ] ||
    [ "$sdk/package-lock.json" -nt "$sdk/node_modules/.package-lock.json" ]; then
    (cd "$sdk" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
sdk_version=$(node -p "require('$sdk/node_modules/@modelcontextprotocol/sdk/package.json').version")

mkdir "$tmp/scripts"
cp "$bench/../scripts/echo.lua" "$tmp/scripts/"
printf 'return { policies = "%s", auth = { dev_key_file = "%s/dev.json" } }\n' \
    "$bench/../policies" "$tmp" >"$tmp/dev.lua"
printf 'return { policies = "%s", auth = { dev_key_file = "%s/dev.json", cache_entries = 0 } }\n' \
    "$bench/../policies" "$tmp" >"$tmp/dev-nocache.lua"
# the luamcp on one worker runs beside it with a dev issuer (and key file) of its own
sed 's/dev\.json/dev1.json/' "$tmp/dev.lua" >"$tmp/dev1.lua"
sed 's/dev\.json/dev1.json/' "$tmp/dev-nocache.lua" >"$tmp/dev1-nocache.lua"

luamcp_pid="" luamcp_port="" luamcp1_pid="" luamcp1_port=""
sdk_pid="" sdk_port="" sdkn_pid="" sdkn_port=""

start_luamcp() { # start_luamcp VAR CONFIG [serve flags...]: sets ${VAR}_pid and ${VAR}_port
    local var=$1 config=$2 port=""; shift 2
    local log=$tmp/$var.log
    "$bin" serve --listen 127.0.0.1:0 --scripts "$tmp/scripts" --stateless --dev \
        --config "$config" --log-level notice "$@" 2>"$log" >"$tmp/$var.audit.jsonl" &
    local p=$!
    servers+=("$p")
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on .* port \([0-9]*\),.*/\1/p' "$log" | head -1)
        if [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; then
            printf -v "${var}_pid" %s "$p"
            printf -v "${var}_port" %s "$port"
            return
        fi
        sleep 0.05
    done
    echo "luamcp did not start:"; cat "$log"; exit 1
}

wait_port() { # wait_port FILE: the N of the "listening on port N" FILE shows within 10 s
    local port=""
    for _ in $(seq 200); do
        port=$(sed -n 's/^listening on port \([0-9]*\).*/\1/p' "$1")
        [ -n "$port" ] && break
        sleep 0.05
    done
    echo "$port"
}

sdk_flags=()
[ "${SDK_AJV_PER_REQUEST:-0}" = 1 ] && sdk_flags+=(--ajv-per-request)
start_sdk() { # start_sdk VAR WORKERS [server.mjs flags...]: sets ${VAR}_pid and ${VAR}_port
    local var=$1 n=$2; shift 2
    local out=$tmp/$var.out
    : >"$out"
    node "$sdk/server.mjs" --workers "$n" ${sdk_flags[@]+"${sdk_flags[@]}"} "$@" >"$out" 2>&1 &
    local p=$! port
    servers+=("$p")
    port=$(wait_port "$out")
    [ -n "$port" ] || { echo "the SDK server did not start:"; cat "$out"; exit 1; }
    printf -v "${var}_pid" %s "$p"
    printf -v "${var}_port" %s "$port"
}

stop() { # stop PID
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

pids_of() { # a server's pid and its children's (the cluster workers), comma-separated
    { echo "$1"; ps -o pid= --ppid "$1" || true; } | tr -d ' ' | paste -sd, -
}

hwm_mib() { # summed VmHWM of a comma-separated list of pids, MiB
    local kib=0 p
    for p in ${1//,/ }; do
        kib=$((kib + $(awk '/VmHWM/ {print $2}' "/proc/$p/status")))
    done
    echo $((kib / 1024))
}

check_echo() { # check_echo PORT TOKEN: one call must answer the echo, or the numbers mean nothing
    local body
    body=$(curl -s "http://127.0.0.1:$1/mcp" -H "Authorization: Bearer $2" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello, world"}}}')
    if ! echo "$body" | grep -q '"text":"hello, world"'; then
        echo "bench/sdk: echo on port $1 answered: $body"; exit 1
    fi
}

warm() { # warm PORT SCRIPT: a short wrk run whose numbers are thrown away
    wrk -t"$threads" -c"$conns" -d1s "http://127.0.0.1:$1/mcp" -s "$2" >/dev/null
}

# row WHAT SERVER PIDS PORT SCRIPT: runs wrk, prints one table row, sets rps
rps=0
row() {
    local what=$1 server=$2 pids=$3 port=$4 script=$5 out
    out=$(wrk -t"$threads" -c"$conns" -d"$duration" --latency -s "$script" "http://127.0.0.1:$port/mcp")
    if echo "$out" | grep -q "Non-2xx"; then
        echo "$out"; echo "bench/sdk: $server, $what got non-2xx answers"; exit 1
    fi
    rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%d", $2}')
    local p50 p99 errors ratio="-"
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    errors=$(echo "$out" | sed -n 's/.*Socket errors: \(.*\)/ (socket errors: \1)/p')
    [ "${server#luamcp}" = "$server" ] && ratio=$(awk -v a="$against" -v b="$rps" \
        'BEGIN {if (b > 0) printf "%.1fx", a / b; else print "inf"}')
    printf "| %-32s | %-18s | %9s | %8s | %8s | %7s MiB | %9s |%s\n" "$what" "$server" "$rps" \
        "$p50" "$p99" "$(hwm_mib "$pids")" "$ratio" "$errors"
}
against=0 # the luamcp req/s a row of another server is compared with (luamcp/it)

# both_rows WHAT SCRIPT TOKENS: luamcp on every core, luamcp on one worker, the SDK (one Node
# process, compared with luamcp on one worker: a core for each server, one for wrk) and the
# SDK cluster (compared with luamcp on every core); sets ratio_sdk (luamcp on one worker / SDK)
# and l_all, l_one (luamcp's req/s)
both_rows() {
    local what=$1 script=$2 tokens=$3
    LUAMCP_TOKENS=$tokens row "$what" luamcp "$luamcp_pid" "$luamcp_port" "$script"
    l_all=$rps
    LUAMCP_TOKENS=$tokens.w1 row "" "luamcp, 1 worker" "$luamcp1_pid" "$luamcp1_port" "$script"
    l_one=$rps
    against=$l_one
    LUAMCP_TOKENS=$tokens row "" "SDK" "$(pids_of "$sdk_pid")" "$sdk_port" "$script"
    ratio_sdk=$(awk -v a="$l_one" -v b="$rps" 'BEGIN {printf "%.1f", (b > 0 ? a / b : 0)}')
    if [ "$workers" -gt 1 ]; then
        against=$l_all
        LUAMCP_TOKENS=$tokens row "" "SDK cluster x$workers" "$(pids_of "$sdkn_pid")" "$sdkn_port" "$script"
    fi
}

# start_all CONFIG CONFIG1 TOKENS_OUT [luamcp token flags...]: luamcp with CONFIG and its tokens
# (TOKENS_OUT), the SDK servers trusting its JWKS, and luamcp on one worker with CONFIG1 and its
# own tokens (TOKENS_OUT.w1); each checked and warmed up
start_all() {
    local config=$1 config1=$2 tokens=$3; shift 3
    start_luamcp luamcp "$config"
    "$bin" token --config "$config" --scope "mcp:tools" "$@" >"$tokens"
    start_luamcp luamcp1 "$config1" --workers 1
    "$bin" token --config "$config1" --scope "mcp:tools" "$@" >"$tokens.w1"
    start_sdk sdk 1 --dev-key-file "$tmp/dev.json"
    [ "$workers" -gt 1 ] && start_sdk sdkn "$workers" --dev-key-file "$tmp/dev.json"
    local port
    for port in "$luamcp_port" "$sdk_port" ${sdkn_port:+"$sdkn_port"}; do
        check_echo "$port" "$(head -1 "$tokens")"
        LUAMCP_TOKENS=$tokens warm "$port" "$bench/echo.lua"
    done
    check_echo "$luamcp1_port" "$(head -1 "$tokens.w1")"
    LUAMCP_TOKENS=$tokens.w1 warm "$luamcp1_port" "$bench/echo.lua"
}
stop_all() {
    stop "$luamcp_pid"; stop "$luamcp1_pid"; stop "$sdk_pid"
    [ -n "$sdkn_pid" ] && stop "$sdkn_pid"
    luamcp_pid="" luamcp1_pid="" sdk_pid="" sdkn_pid="" sdkn_port=""
}

cores=$(nproc)
echo "luamcp vs the TypeScript SDK (@modelcontextprotocol/sdk $sdk_version, Node $(node --version))" \
    "— $(date -u +%Y-%m-%d) — $cores cores — wrk -t$threads -c$conns -d$duration"
echo "luamcp: one process, a worker thread per core; \"luamcp, 1 worker\": --workers 1. SDK: one Node"
echo "process (JavaScript runs on one thread)$([ "$workers" -gt 1 ] && echo "; SDK cluster x$workers: node:cluster, $workers worker processes")."
echo "luamcp/it: the SDK against luamcp on one worker, the cluster against luamcp on every core."
if [ "${SDK_AJV_PER_REQUEST:-0}" = 1 ]; then
    echo "The SDK as its stateless example has it: an Ajv instance built with each per-request McpServer."
else
    echo "The SDK's per-request McpServers share one JSON Schema validator (its best case; SDK_AJV_PER_REQUEST=1: its default)."
fi
echo "Same tokens (RS256, from luamcp's dev issuer), same JWKS, both verify signatures, same scope rule."
echo
printf "| %-32s | %-18s | %9s | %8s | %8s | %11s | %9s |\n" "what" "server" "req/s" "p50" "p99" \
    "peak RSS" "luamcp/it"
printf "|%s|%s|%s|%s|%s|%s|%s|\n" "----------------------------------" "--------------------" \
    "-----------" "----------" "----------" "-------------" "-----------"

start_all "$tmp/dev.lua" "$tmp/dev1.lua" "$tmp/one.txt"
both_rows "tools/call echo, reused token" "$bench/echo.lua" "$tmp/one.txt"
ratio_reused=$ratio_sdk
echo_all=$l_all echo_one=$l_one
ratio_other=""
if [ "${SDK_AJV_PER_REQUEST:-0}" != 1 ]; then
    # the SDK's default beside its best case, in the same run: a validator per McpServer
    saved=("${sdk_flags[@]+"${sdk_flags[@]}"}")
    sdk_flags=(--ajv-per-request)
    start_sdk sdkd 1 --dev-key-file "$tmp/dev.json"
    check_echo "$sdkd_port" "$(head -1 "$tmp/one.txt")"
    LUAMCP_TOKENS=$tmp/one.txt warm "$sdkd_port" "$bench/echo.lua"
    against=$echo_one
    LUAMCP_TOKENS=$tmp/one.txt row "" "SDK, default" "$(pids_of "$sdkd_pid")" "$sdkd_port" \
        "$bench/echo.lua"
    ratio_other=$(awk -v a="$echo_one" -v b="$rps" 'BEGIN {printf "%.1f", (b > 0 ? a / b : 0)}')
    stop "$sdkd_pid"
    sdk_flags=("${saved[@]+"${saved[@]}"}")
fi
# the floor: what any HTTP server could do here, with wrk on the same cores (bench/floor_server:
# an epoll loop per core answering the same request with luamcp's bytes, nothing else); then
# on one thread, the ceiling for luamcp on one worker and the SDK's one Node process
floor_rps=0 floor1_rps=0
floor_bin=$(dirname "$bin")/bench/floor_server
floor_row() { # floor_row LABEL THREADS AGAINST: one row of the floor server; sets rps
    "$floor_bin" 0 $2 >"$tmp/floor.out" 2>&1 &
    local pid=$! port
    servers+=("$pid")
    port=$(wait_port "$tmp/floor.out")
    check_echo "$port" "$(head -1 "$tmp/one.txt")"
    against=$3
    LUAMCP_TOKENS=$tmp/one.txt row "" "$1" "$pid" "$port" "$bench/echo.lua"
    stop "$pid"
}
if [ -x "$floor_bin" ]; then
    floor_row "floor: epoll" "" "$echo_all"
    floor_rps=$rps
    floor_row "floor, 1 thread" 1 "$echo_one"
    floor1_rps=$rps
fi
both_rows "tools/list, reused token" "$sdk/tools_list.lua" "$tmp/one.txt"
stop_all

start_all "$tmp/dev-nocache.lua" "$tmp/dev1-nocache.lua" "$tmp/many.txt" --count 2000
both_rows "tools/call echo, fresh token" "$bench/echo.lua" "$tmp/many.txt"
ratio_fresh=$ratio_sdk
stop_all

# the concurrency test: luamcp as bench/concurrency.mjs runs it (its output may be handed over
# in CONCURRENCY_LUAMCP by bench/run.sh, which has just run it), then the SDK servers
conc() { # conc FILE SERVER: one table row from concurrency.mjs's output
    local f=$1 server=$2 ms answered floor rss cpu ratio="-"
    ms=$(sed -n 's/^  through .*: *\([0-9]*\) ms, .*/\1/p' "$f")
    answered=$(sed -n 's/.* ms, \([0-9]*\/[0-9]*\) answered.*/\1/p' "$f")
    floor=$(sed -n 's/.*ratio .* \/ floor: \([0-9.]*\)/\1/p' "$f")
    rss=$(sed -n 's/.*peak \([0-9.]*\) MiB.*/\1/p' "$f")
    cpu=$(sed -n 's/.*CPU \([0-9]*\) ms.*/\1/p' "$f")
    [ -z "$ms" ] && { echo "| $server | did not run: $(tr '\n' ' ' <"$f" | cut -c1-200) |"; return; }
    [ "$server" != luamcp ] && ratio=$(awk -v a="$ms" -v b="$luamcp_ms" 'BEGIN {printf "%.1fx", a / b}')
    [ "$server" = luamcp ] && luamcp_ms=$ms
    printf "| %-15s | %8s ms | %9s | %7s | %7s MiB | %7s ms | %9s |\n" "$server" "$ms" "$answered" \
        "$floor" "$rss" "$cpu" "$ratio"
}
n=${N:-1000}
delay=${DELAY:-1000}
echo
echo "$n concurrent tools/call of a tool whose backend answers after $delay ms (bench/concurrency.mjs, no"
echo "auth; wall time until all have answered; / floor: that time over the client's straight to the backend):"
echo
printf "| %-15s | %11s | %9s | %7s | %11s | %10s | %9s |\n" "server" "wall time" "answered" \
    "/ floor" "peak RSS" "CPU" "it/luamcp"
printf "|%s|%s|%s|%s|%s|%s|%s|\n" "-----------------" "-------------" "-----------" "---------" \
    "-------------" "------------" "-----------"
if [ -n "${CONCURRENCY_LUAMCP:-}" ] && [ -s "$CONCURRENCY_LUAMCP" ]; then
    cp "$CONCURRENCY_LUAMCP" "$tmp/conc-luamcp.txt"
else
    node "$bench/concurrency.mjs" "$bin" >"$tmp/conc-luamcp.txt" 2>&1 || true
fi
conc "$tmp/conc-luamcp.txt" luamcp
start_sdk sdk 1 --no-auth --slow
MCP_URL="http://127.0.0.1:$sdk_port/mcp" MCP_LABEL=SDK MCP_PIDS=$(pids_of "$sdk_pid") \
    node "$bench/concurrency.mjs" >"$tmp/conc-sdk.txt" 2>&1 || true
conc "$tmp/conc-sdk.txt" SDK
stop "$sdk_pid"
if [ "$workers" -gt 1 ]; then
    start_sdk sdkn "$workers" --no-auth --slow
    MCP_URL="http://127.0.0.1:$sdkn_port/mcp" MCP_LABEL="SDK cluster x$workers" \
        MCP_PIDS=$(pids_of "$sdkn_pid") node "$bench/concurrency.mjs" >"$tmp/conc-sdkn.txt" 2>&1 || true
    conc "$tmp/conc-sdkn.txt" "SDK cluster x$workers"
    stop "$sdkn_pid"
fi

echo
echo "authenticated echo, luamcp on one worker / the SDK in one Node process (a core each, wrk on the other):"
if [ -n "$ratio_other" ]; then
    echo "  the SDK as its docs write it (a JSON Schema validator per McpServer): ${ratio_other}x with a reused token (target >= 40)"
    echo "  the SDK tuned (one validator shared): ${ratio_reused}x with a reused token, ${ratio_fresh}x with a fresh token per request"
else
    echo "  the SDK as its docs write it: ${ratio_reused}x with a reused token (target >= 40), ${ratio_fresh}x with a fresh token per request"
fi
if [ "$floor_rps" -gt 0 ]; then
    # the most any server could show here: the floor's req/s over the SDK's
    awk -v f="$floor_rps" -v f1="$floor1_rps" -v r="$ratio_reused" -v o="${ratio_other:-0}" \
        -v l="$echo_one" -v a="$echo_all" \
        'BEGIN {printf "  the floor (bare epoll, no work at all): %d req/s on both cores (luamcp on both reaches %.0f%%),", f, 100 * a / f
                printf " %d on one (luamcp on one worker reaches %.0f%%); the most a one-core server could show here: ", f1, 100 * l / f1
                if (o > 0) printf "%.1fx the SDK as documented, ", o * f1 / l
                printf "%.1fx the %s SDK\n", r * f1 / l, (o > 0 ? "tuned" : "same")}'
fi
true
