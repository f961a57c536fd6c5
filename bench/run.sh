#!/usr/bin/env bash
# make bench: luamcp under wrk (keep-alive, -t1 -c32), beside a ceiling measured in the same
# run (/healthz: HTTP + routing, no JSON-RPC, no Lua), so the ratio holds on a noisy machine,
# and the floor for any HTTP server here (bench/floor_server: an epoll loop per core that
# answers with luamcp's bytes and does nothing else).
# wrk shares the machine with the server: one client thread sending one prepared request
# (bench/echo.lua) leaves the server the most of it; WRK_THREADS=2 for two. The latency row
# runs the server with one worker, so the server and wrk each have a core of their own.
# Prints req/s, p50, p99 and the server's RSS (peak, from VmHWM) for each row. Then, with Node,
# the reload and concurrency benches and luamcp beside the official TypeScript SDK server
# (bench/sdk/compare.sh, whose top comment says what is kept equal; BENCH_SDK=0 skips it).
set -euo pipefail
bin=$(realpath "${1:-./build/luamcp}") # absolute: reload_bench.mjs starts it from a temp dir
duration=${DURATION:-10s}
conns=${CONNS:-32}
threads=${WRK_THREADS:-1}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
log=$tmp/server.log
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

printf 'return { auth = { enabled = false }, policies = "%s/open-policies" }\n' "$here" \
    >"$tmp/noauth.lua"
# the shipped policies: echo needs the mcp:tools scope, so policy evaluation is measured too
printf 'return { policies = "%s", auth = { dev_key_file = "%s/dev.json" } }\n' \
    "$here/../policies" "$tmp" >"$tmp/dev.lua"
printf 'return { policies = "%s", auth = { dev_key_file = "%s/dev.json", cache_entries = 0 } }\n' \
    "$here/../policies" "$tmp" >"$tmp/dev-nocache.lua"

start() { # start [flags...]: a server on a free port; sets pid and port
    "$bin" serve --listen 127.0.0.1:0 --scripts "$here/../scripts" \
        --log-level notice "$@" 2>"$log" >"$tmp/audit.jsonl" &
    pid=$!
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on .* port \([0-9]*\),.*/\1/p' "$log" | head -1)
        [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return
        sleep 0.05
    done
    echo "server did not start:"; cat "$log"; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$pid/status"; }

# row NAME URL [wrk args...]: runs wrk, prints one table row, remembers req/s in $rps
row() {
    local name=$1 url=$2; shift 2
    local out
    out=$(wrk -t"$threads" -c"$conns" -d"$duration" --latency "$@" "$url")
    if echo "$out" | grep -q "Non-2xx"; then
        echo "$out"; echo "bench: $name got non-2xx answers"; exit 1
    fi
    rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%d", $2}')
    local p50 p99
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    printf "| %-34s | %9s | %8s | %8s | %7s MiB |\n" "$name" "$rps" "$p50" "$p99" \
        "$(( $(hwm_kib) / 1024 ))"
}

echo "luamcp bench — $(date -u +%Y-%m-%d) — $(nproc) cores — wrk -t$threads -c$conns -d$duration"
echo
printf "| %-34s | %9s | %8s | %8s | %11s |\n" "what" "req/s" "p50" "p99" "peak RSS"
printf "|%s|%s|%s|%s|%s|\n" "------------------------------------" "-----------" \
    "----------" "----------" "-------------"

# the floor for any HTTP server on this machine with this client (bench/floor_server)
floor_bin=$(dirname "$bin")/bench/floor_server
if [ -x "$floor_bin" ]; then
    "$floor_bin" 0 >"$tmp/floor.out" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening on port \([0-9]*\).*/\1/p' "$tmp/floor.out")
        [ -n "$port" ] && break
        sleep 0.05
    done
    row "floor: bare epoll, no work" "http://127.0.0.1:$port/mcp" -s "$here/echo.lua"
    stop
fi

start --stateless --config "$tmp/noauth.lua"
base_rss=$(rss_kib)
row "GET /healthz (ceiling)" "http://127.0.0.1:$port/healthz"
ceiling=$rps
row "tools/call echo, stateless" "http://127.0.0.1:$port/mcp" -s "$here/echo.lua"
echo_rps=$rps
row "tools/list, stateless" "http://127.0.0.1:$port/mcp" -s "$here/tools_list.lua"
stop

start --config "$tmp/noauth.lua"
sid=$(curl -s -D - -o /dev/null "http://127.0.0.1:$port/mcp" \
    -H 'Content-Type: application/json' -H 'Accept: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
    | tr -d '\r' | awk -F': ' 'tolower($1) == "mcp-session-id" {print $2}')
LUAMCP_SESSION=$sid row "tools/call echo, with a session" "http://127.0.0.1:$port/mcp" \
    -s "$here/echo.lua"
stop

# Authenticated: the development issuer signs RS256 tokens (2048-bit RSA).
start --stateless --dev --config "$tmp/dev.lua"
"$bin" token --config "$tmp/dev.lua" --scope "mcp:tools" >"$tmp/one.txt"
LUAMCP_TOKENS=$tmp/one.txt row "tools/call echo, RS256, reused token" \
    "http://127.0.0.1:$port/mcp" -s "$here/echo.lua"
auth_reused=$rps
stop
# latency with a core each: the server on one worker, wrk on the other core
start --stateless --dev --config "$tmp/dev.lua" --workers 1
"$bin" token --config "$tmp/dev.lua" --scope "mcp:tools" >"$tmp/one.txt"
LUAMCP_TOKENS=$tmp/one.txt row "same, 1 worker (a core each)" \
    "http://127.0.0.1:$port/mcp" -s "$here/echo.lua"
stop
# what the policy decision itself cost per call (the audit log records it)
policy_us=$(awk -F'"latency_us":' 'NF > 1 {split($2, a, /[,}]/); s += a[1]; n++}
    END {if (n) printf "%.2f", s / n; else print "?"}' "$tmp/audit.jsonl")
start --stateless --dev --config "$tmp/dev-nocache.lua"
"$bin" token --config "$tmp/dev-nocache.lua" --scope "mcp:tools" --count 2000 >"$tmp/many.txt"
LUAMCP_TOKENS=$tmp/many.txt row "tools/call echo, RS256, verify each" \
    "http://127.0.0.1:$port/mcp" -s "$here/echo.lua"
auth_fresh=$rps
stop

echo
echo "idle RSS at start: $((base_rss / 1024)) MiB"
awk -v a="$auth_reused" -v e="$echo_rps" \
    'BEGIN {printf "reused token / unauthenticated: %.2f (target >= 0.90)\n", a / e}'
echo "verify each request: $auth_fresh req/s (target >= 15000)"
awk -v us="$policy_us" -v r="$auth_reused" -v c="$(nproc)" 'BEGIN {
    per = 1e6 * c / r; printf "policy decision: %.2f us per call = %.1f%% of the %.1f us of CPU a call takes at that rate (target <= 5%%)\n", us, 100 * us / per, per }'
jose_bench=$(dirname "$bin")/bench/jose_bench
if [ -x "$jose_bench" ]; then
    echo
    "$jose_bench"
fi
awk -v e="$echo_rps" -v c="$ceiling" \
    'BEGIN {printf "echo / ceiling: %.2f (tools/call echo runs at %.0f%% of bare HTTP)\n", e / c, 100 * e / c}'
if command -v node >/dev/null 2>&1; then
    echo; node "$here/reload_bench.mjs" "$bin"
    echo; node "$here/concurrency.mjs" "$bin" | tee "$tmp/concurrency.txt"
    echo; node "$here/rss.mjs" "$bin"
    if [ "${BENCH_SDK:-1}" != 0 ]; then
        echo; CONCURRENCY_LUAMCP=$tmp/concurrency.txt "$here/sdk/compare.sh" "$bin"
    fi
fi
