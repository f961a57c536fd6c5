#!/usr/bin/env bash
# The server's life from outside: the command line, configuration errors, refusing unsafe
# listen addresses and busy ports, HTTPS, and graceful shutdown that finishes requests in
# flight. Usage: lifecycle.sh LUAMCP_BINARY
set -u
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
t=$(mktemp -d)
printf 'return { auth = { enabled = false }, policies = "%s" }\n' "$here/lifecycle-policies" \
    >"$t/noauth.lua"
pids=()
pass=0 fail=0
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$t"; }
trap cleanup EXIT

ok() { pass=$((pass + 1)); echo "ok - $1"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $1"; shift; for l in "$@"; do echo "#   $l"; done; }
check() { # check NAME CONDITION-COMMAND...
    local name=$1; shift
    if "$@"; then ok "$name"; else not_ok "$name" "failed: $*"; fi
}
contains() { [[ $1 == *"$2"* ]]; }

# start NAME ARGS...: a server on a free port; sets port and pid, log in $t/NAME.log
start() {
    local name=$1; shift
    "$bin" serve --listen 127.0.0.1:0 --scripts "$here/lifecycle" --workers 2 \
        --config "$t/noauth.lua" "$@" \
        >"$t/$name.out" 2>"$t/$name.log" &
    pid=$!
    pids+=("$pid")
    port=""
    for _ in $(seq 200); do
        port=$(sed -n 's/.*listening on .* port \([0-9]*\),.*/\1/p' "$t/$name.log" | head -1)
        [[ -n $port ]] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "# server $name did not start:"; sed 's/^/#   /' "$t/$name.log"
    return 1
}

rpc() { # rpc URL BODY [curl args...]: stateless JSON-RPC POST, prints the body
    local url=$1 body=$2; shift 2
    curl -s --max-time 10 "$url" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -d "$body" "$@"
}
call_slow() {
    rpc "$1" "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"slow\",\"arguments\":{\"ms\":$2}}}" "${@:3}"
}

# ---- command line -------------------------------------------------------------------------
out=$("$bin" --help); rc=$?
check "--help exits 0 and shows usage" test $rc -eq 0
check "--help names serve and check" contains "$out" "luamcp serve [options]"
out=$("$bin" --version); check "--version prints the version" contains "$out" "luamcp 0."
out=$("$bin" frobnicate 2>&1); rc=$?
check "unknown command exits 2" test $rc -eq 2
check "unknown command is named" contains "$out" "unknown command 'frobnicate'"
out=$("$bin" serve --bogus 2>&1); rc=$?
check "unknown flag exits 2" test $rc -eq 2
out=$("$bin" serve --workers 0 2>&1); rc=$?
check "--workers 0 is refused" contains "$out" "--workers must be 1..256"

# ---- configuration errors ------------------------------------------------------------------
printf 'return { listen = "127.0.0.1:0", colour = "blue" }\n' >"$t/unknown.lua"
out=$("$bin" serve --config "$t/unknown.lua" 2>&1); rc=$?
check "unknown config key exits 2" test $rc -eq 2
check "unknown config key is named with the file" contains "$out" "$t/unknown.lua: colour: unknown key"
printf 'return { limits = { cpu_ms = "fast" } }\n' >"$t/type.lua"
out=$("$bin" serve --config "$t/type.lua" 2>&1)
check "wrong config type is explained" contains "$out" "limits.cpu_ms: expected an integer, got string"
printf 'return { tasks = { ttl = 5 } }\n' >"$t/tasks_key.lua"
out=$("$bin" serve --config "$t/tasks_key.lua" 2>&1); rc=$?
check "an unknown tasks key lists the known ones" contains "$out" "tasks.ttl: unknown key (ttl_ms, timeout_ms, poll_interval_ms, max, per_caller, max_result_bytes)"
printf 'return { listen = "127.0.0.1:0", tasks = { ttl_ms = 60000, timeout_ms = 60000 } }\n' >"$t/tasks_ttl.lua"
out=$("$bin" serve --config "$t/tasks_ttl.lua" 2>&1); rc=$?
check "a task timeout not below its ttl is refused" contains "$out" "tasks.timeout_ms must be shorter than tasks.ttl_ms"
check "... with exit 2" test $rc -eq 2
printf 'return {\n  listen = \n' >"$t/syntax.lua"
out=$("$bin" serve --config "$t/syntax.lua" 2>&1)
check "config syntax error names file and line" contains "$out" "syntax.lua:3:"
printf 'return { workers = os.exit(1) }\n' >"$t/sandbox.lua"
out=$("$bin" serve --config "$t/sandbox.lua" 2>&1); rc=$?
check "config file has no libraries" test $rc -eq 2
printf 'while true do end\n' >"$t/loop.lua"
out=$("$bin" serve --config "$t/loop.lua" 2>&1); rc=$?
check "a config file that loops is stopped" contains "$out" "runs too long"

# ---- unsafe or busy addresses --------------------------------------------------------------
out=$("$bin" serve --listen 0.0.0.0:0 --scripts "$here/lifecycle" --config "$t/noauth.lua" 2>&1); rc=$?
check "non-loopback listen is refused without auth" test $rc -eq 1
check "the refusal says why" contains "$out" "a server without authentication serves loopback addresses only"
out=$("$bin" serve --listen 0.0.0.0:0 --scripts "$here/lifecycle" --dev 2>&1); rc=$?
check "non-loopback listen is refused in dev mode" test $rc -eq 1
out=$("$bin" serve --listen 127.0.0.1:0 --scripts "$here/lifecycle" 2>&1); rc=$?
check "auth is on by default: no issuer is an error" test $rc -eq 1
check "the error says how to configure one" contains "$out" "no token issuer is configured: give --issuer URL"
start busy || exit 1
busy_port=$port
out=$("$bin" serve --listen "127.0.0.1:$busy_port" --scripts "$here/lifecycle" --config "$t/noauth.lua" 2>&1); rc=$?
check "a busy port is an error, not a shared port" test $rc -eq 1
check "busy port error explains" contains "$out" "cannot bind"
kill "$pid"; wait "$pid" 2>/dev/null

# ---- check ---------------------------------------------------------------------------------
mkdir -p "$t/bad"
printf 'mcp.tool{name="ok", description="d", inputSchema={type="object"}, handler=function() end}\n\nmcp.tool{name="ok", description="d", inputSchema={type="object"}, handler=function() end}\n' >"$t/bad/dup.lua"
out=$("$bin" check --scripts "$t/bad" 2>&1); rc=$?
check "check fails on a broken script" test $rc -eq 1
check "check reports file:line" contains "$out" "dup.lua:3: duplicate tool name 'ok'"
out=$("$bin" serve --listen 127.0.0.1:0 --scripts "$t/bad" --config "$t/noauth.lua" 2>&1); rc=$?
check "serve refuses to start with a broken script" test $rc -eq 1
out=$("$bin" check --scripts "$here/lifecycle"); rc=$?
check "check passes on good scripts" test $rc -eq 0
check "check lists the tools" contains "$out" "slow"

# ---- graceful shutdown ---------------------------------------------------------------------
# wait_established N: until N client connections to $port are up (signal only then: a busy
# machine may be slow to start curl)
wait_established() {
    for _ in $(seq 100); do
        [ "$(ss -Htn state established "( dport = :$port )" | wc -l)" -ge "$1" ] && break
        sleep 0.05
    done
}
# expect_refused LABEL LOG: once LOG says the drain began, a new connection is refused (curl
# rc 7, at connect; a socket still listening would take it and reset it later: rc 56 or 52)
expect_refused() {
    local begin rc ms
    for _ in $(seq 100); do grep -q "finishing in-flight" "$2" && break; sleep 0.02; done
    begin=$(date +%s%N)
    curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$port/healthz"; rc=$?
    ms=$(( ($(date +%s%N) - begin) / 1000000 ))
    check "$1: a new connection is refused at once (curl rc $rc, $ms ms)" test "$rc" -eq 7
}
printf 'return { limits = { cpu_ms = 10000 }, grace_s = 10 }\n' >"$t/slow.lua"
for sig in TERM INT; do
    start "graceful_$sig" --stateless --config "$t/slow.lua" || exit 1
    url="http://127.0.0.1:$port/mcp"
    call_slow "$url" 1500 >"$t/inflight_$sig.json" &
    client=$!
    wait_established 1
    sleep 0.3
    kill -"$sig" "$pid"
    wait "$client"
    body=$(cat "$t/inflight_$sig.json")
    check "SIG$sig: the request in flight is answered" contains "$body" "done after 1500 ms"
    wait "$pid"; rc=$?
    check "SIG$sig: the server exits 0 after draining" test $rc -eq 0
    check "SIG$sig: the log says it stopped" grep -q "stopped" "$t/graceful_$sig.log"
    out=$(curl -s --max-time 2 "http://127.0.0.1:$port/healthz"); rc=$?
    check "SIG$sig: nothing listens afterwards" test $rc -ne 0
done

# While it drains, the server listens no more: a new connection is refused at once (not left
# to wait for a timeout), and the calls in flight on both workers are still answered.
start drain_refuses --stateless --config "$t/slow.lua" || exit 1
url="http://127.0.0.1:$port/mcp"
for i in 1 2 3 4; do
    rpc "$url" '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nap","arguments":{"ms":2000}}}' \
        >"$t/nap_$i.json" &
    naps[$i]=$!
done
wait_established 4
sleep 0.3
kill -TERM "$pid"
expect_refused draining "$t/drain_refuses.log"
for i in 1 2 3 4; do
    wait "${naps[$i]}"
    check "draining: call $i in flight is answered" contains "$(cat "$t/nap_$i.json")" "awake after 2000 ms"
done
wait "$pid"; rc=$?
check "draining: the server exits 0" test $rc -eq 0

# The same when the one worker is busy in a handler (a CPU-bound call): its listening socket is
# shut when the signal comes, not when the handler ends.
start drain_busy --stateless --workers 1 --config "$t/slow.lua" || exit 1
url="http://127.0.0.1:$port/mcp"
call_slow "$url" 2000 >"$t/busy.json" &
client=$!
wait_established 1
sleep 0.3
kill -TERM "$pid"
expect_refused "draining, the worker busy" "$t/drain_busy.log"
wait "$client"
check "draining, the worker busy: its call is answered" contains "$(cat "$t/busy.json")" "done after 2000 ms"
wait "$pid"; rc=$?
check "draining, the worker busy: the server exits 0" test $rc -eq 0
check "draining, the worker busy: nothing about accepting is logged" \
    bash -c "! grep -qi 'accepting' '$t/drain_busy.log'"

# A client that sent half a body holds its request open: shutdown waits grace_s for it,
# not the 30 s idle timeout.
printf 'return { grace_s = 1 }\n' >"$t/short.lua"
start grace_limit --stateless --config "$t/short.lua" || exit 1
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"jsonrpc"' >&3
sleep 0.3
begin=$(date +%s%N)
kill -TERM "$pid"
wait "$pid"; rc=$?
elapsed_ms=$(( ($(date +%s%N) - begin) / 1000000 ))
exec 3>&-
check "a stalled upload delays shutdown by grace_s only (${elapsed_ms} ms)" \
    test "$elapsed_ms" -ge 900 -a "$elapsed_ms" -lt 5000
check "the grace_s expiry is logged" grep -q "still in flight after grace_s" "$t/grace_limit.log"

# ---- sessions: one caller may hold max_sessions_per_caller, others are not shut out --------
mkdir -p "$t/percaller"
printf 'return { policies = "%s", max_sessions_per_caller = 2, auth = { dev_key_file = "%s" } }\n' \
    "$here/lifecycle-policies" "$t/percaller/dev.json" >"$t/percaller.lua"
"$bin" serve --listen 127.0.0.1:0 --scripts "$here/lifecycle" --workers 2 --dev \
    --config "$t/percaller.lua" >"$t/percaller.out" 2>"$t/percaller.log" &
pid=$!
pids+=("$pid")
port=""
for _ in $(seq 200); do
    port=$(sed -n 's/.*listening on .* port \([0-9]*\),.*/\1/p' "$t/percaller.log" | head -1)
    [[ -n $port ]] && break
    sleep 0.05
done
url="http://127.0.0.1:$port/mcp"
tok_a=$("$bin" token --config "$t/percaller.lua" --sub alice)
tok_b=$("$bin" token --config "$t/percaller.lua" --sub bob)
init() { # init TOKEN: status, then the session id (or the body) on one line
    local h body
    body=$(curl -s --max-time 10 -D "$t/init.h" "$url" -H "Authorization: Bearer $1" \
        -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
        -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}')
    h=$(tr -d '\r' <"$t/init.h")
    printf '%s %s\n' "$(sed -n '1s/^HTTP\/[0-9.]* \([0-9]*\).*/\1/p' <<<"$h")" \
        "$(sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p' <<<"$h")$( [ -z "$(grep -i '^mcp-session-id' <<<"$h")" ] && echo "$body")"
}
read -r st1 sid1 <<<"$(init "$tok_a")"
read -r st2 sid2 <<<"$(init "$tok_a")"
check "per caller: alice opens two sessions" test "$st1 $st2" = "200 200" -a -n "$sid1" -a -n "$sid2"
read -r st3 body3 <<<"$(init "$tok_a")"
check "per caller: alice's third initialize is 429 ($st3)" test "$st3" = 429
check "per caller: the refusal says why" contains "$body3" "max_sessions_per_caller"
read -r stb sidb <<<"$(init "$tok_b")"
check "per caller: bob still opens one ($stb)" test "$stb" = 200 -a -n "$sidb"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X DELETE "$url" \
    -H "Authorization: Bearer $tok_a" -H "Mcp-Session-Id: $sid1" -H 'MCP-Protocol-Version: 2025-11-25')
check "per caller: alice ends one with DELETE ($code)" test "$code" = 200 -o "$code" = 204
read -r st4 sid4 <<<"$(init "$tok_a")"
check "per caller: then alice may open another ($st4)" test "$st4" = 200 -a -n "$sid4"
code=$(rpc "$url" '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' -H "Authorization: Bearer $tok_a" \
    -H "Mcp-Session-Id: $sid2" -H 'MCP-Protocol-Version: 2025-11-25' -o /dev/null -w '%{http_code}')
check "per caller: her other session still serves ($code)" test "$code" = 200
kill "$pid"; wait "$pid" 2>/dev/null

# ---- mcp.cache: one store for every worker, kept across reloads -------------------------------
start cache --stateless || exit 1
count() { rpc "http://127.0.0.1:$port/mcp" '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"counter"}}' | sed -n 's/.*"text":"\([0-9]*\)".*/\1/p'; }
seq 200 | xargs -P 8 -I{} curl -s -o /dev/null --max-time 10 "http://127.0.0.1:$port/mcp" \
    -H 'Content-Type: application/json' -H 'Accept: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"counter"}}'
check "200 concurrent increments on 2 workers lose none" test "$(count)" = 201
kill -HUP "$pid"
for _ in $(seq 50); do grep -q "reload (SIGHUP): version 2" "$t/cache.log" && break; sleep 0.1; done
check "the counter survives a reload" test "$(count)" = 202
kill "$pid"; wait "$pid" 2>/dev/null

# ---- secrets: from the environment or a 0600 file, never in a log line or an error -----------
printf 'API_KEY=sk-live-0123456789abcdef\n' >"$t/secrets"
chmod 644 "$t/secrets"
printf 'return { secrets_file = "secrets" }\n' >"$t/secrets.lua"
out=$("$bin" serve --listen 127.0.0.1:0 --scripts "$here/lifecycle" --config "$t/noauth.lua" \
    --config "$t/secrets.lua" 2>&1); rc=$?
check "a secrets file readable by others is refused" contains "$out" "readable by others (chmod 600 it)"
chmod 600 "$t/secrets"
start secrets --stateless --config "$t/secrets.lua" || exit 1
leak() { rpc "http://127.0.0.1:$port/mcp" "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"leak\",\"arguments\":{\"how\":\"$1\"}}}"; }
check "mcp.secret reads the file" contains "$(leak length)" '"text":"24"'
body=$(leak result)
check "an error result carries [secret], not the value" contains "$body" "refused, key [secret] rejected"
body=$(leak error)$(leak log)
check "no answer carries the value" test "${body/sk-live-0123456789abcdef/}" = "$body"
sleep 0.2
check "the log has [secret] where the value was" grep -q "the key is \[secret\]" "$t/secrets.log"
check "the traceback in the log is redacted too" grep -q "failed with \[secret\]" "$t/secrets.log"
check "the log never has the value" test "$(grep -c 'sk-live-0123456789abcdef' "$t/secrets.log")" = 0
kill "$pid"; wait "$pid" 2>/dev/null
# ctx.log to a client that asked for log messages: notifications/message carries [secret]
start secrets_session --config "$t/secrets.lua" || exit 1
sid=$(rpc "http://127.0.0.1:$port/mcp" '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"sh","version":"1"}}}' -D - |
    tr -d '\r' | sed -n 's/^[Mm]cp-[Ss]ession-[Ii]d: //p')
srpc() { rpc "http://127.0.0.1:$port/mcp" "$1" -H "Mcp-Session-Id: $sid" -H 'MCP-Protocol-Version: 2025-11-25'; }
srpc '{"jsonrpc":"2.0","method":"notifications/initialized"}' >/dev/null
srpc '{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"debug"}}' >/dev/null
body=$(srpc '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"leak","arguments":{"how":"log"}}}')
check "ctx.log reaches the client as notifications/message" contains "$body" '"method":"notifications/message"'
check "the notification carries [secret], not the value" contains "$body" 'again [secret]'
check "no notification carries the value" test "${body/sk-live-0123456789abcdef/}" = "$body"
kill "$pid"; wait "$pid" 2>/dev/null
LUAMCP_SECRET_API_KEY=from-the-environment-1 start secrets_env --stateless || exit 1
check "mcp.secret reads the environment" contains "$(leak length)" '"text":"22"'
kill "$pid"; wait "$pid" 2>/dev/null

# ---- HTTPS ---------------------------------------------------------------------------------
if openssl req -x509 -newkey rsa:2048 -nodes -keyout "$t/key.pem" -out "$t/cert.pem" \
    -days 1 -subj /CN=localhost >/dev/null 2>&1; then
    printf 'return { tls = { cert = "cert.pem", key = "key.pem" } }\n' >"$t/tls.lua"
    start tls --stateless --config "$t/tls.lua" || exit 1
    body=$(call_slow "https://127.0.0.1:$port/mcp" 1 --cacert "$t/cert.pem" \
        --resolve "localhost:$port:127.0.0.1" --url "https://localhost:$port/mcp")
    check "HTTPS answers a tools/call" contains "$body" "done after 1 ms"
    conns=$(curl -s --cacert "$t/cert.pem" -o /dev/null -o /dev/null -w '%{num_connects}\n' \
        --resolve "localhost:$port:127.0.0.1" "https://localhost:$port/healthz" \
        "https://localhost:$port/healthz" | awk '{s += $1} END {print s}')
    check "HTTPS keeps the connection alive (1 connect for 2 requests)" test "$conns" -eq 1
    out=$(curl -s --max-time 3 "http://127.0.0.1:$port/healthz"); rc=$?
    check "plain HTTP on the TLS port gets no answer" test -z "$out"
    kill "$pid"; wait "$pid" 2>/dev/null
    printf 'return { tls = { cert = "cert.pem" } }\n' >"$t/half.lua"
    out=$("$bin" serve --listen 127.0.0.1:0 --config "$t/noauth.lua" --config "$t/half.lua" 2>&1)
    check "tls needs both cert and key" contains "$out" "tls needs both cert and key"
else
    not_ok "HTTPS" "openssl could not make a test certificate"
fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
