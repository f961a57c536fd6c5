#!/usr/bin/env bash
# make bench-hardening: what the sandbox and edge hardening (issues #15, #16) cost, as echo
# before and after in the same run. The "before" binary is built from BASE (default d9da975, the
# last commit before them) into $BUILD/bench-base; both binaries then take turns under wrk,
# ROUNDS times each, on the same port settings, so drift on a noisy machine hits both alike.
# Prints the medians and their ratio, and draws bench/hardening.svg from those numbers.
#   hardening.sh AFTER_BIN [BUILD_DIR]
set -euo pipefail
after=$(realpath "$1")
build=$(realpath "${2:-build}")
base_ref=${BASE:-d9da975}
rounds=${ROUNDS:-3}
duration=${DURATION:-5s}
conns=${CONNS:-32}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
tmp=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    wait 2>/dev/null
    git -C "$top" worktree remove --force "$tmp/src" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# the before binary, built once per base commit
before_dir=$build/bench-base
before=$before_dir/luamcp
if [ ! -x "$before" ] || [ "$(cat "$before_dir/.ref" 2>/dev/null)" != "$base_ref" ]; then
    echo "building luamcp at $base_ref (the baseline) in $before_dir ..."
    git -C "$top" worktree add -q --detach "$tmp/src" "$base_ref"
    cmake -S "$tmp/src" -B "$before_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DLUAMCP_SANITIZE=OFF -DLUAMCP_TESTS=OFF >/dev/null
    cmake --build "$before_dir" -j"$(nproc)" --target luamcp -- --no-print-directory >/dev/null
    echo "$base_ref" >"$before_dir/.ref"
fi

printf 'return { auth = { enabled = false }, policies = "%s/open-policies" }\n' "$here" \
    >"$tmp/noauth.lua"
printf 'return { policies = "%s", auth = { dev_key_file = "%s/dev.json" } }\n' \
    "$top/policies" "$tmp" >"$tmp/dev.lua"

start() { # start BIN [flags...]: a server on a free port; sets pid and port
    local bin=$1; shift
    "$bin" serve --listen 127.0.0.1:0 --scripts "$top/scripts" --log-level notice "$@" \
        2>"$tmp/server.log" >/dev/null &
    pid=$!
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on .* port \([0-9]*\),.*/\1/p' "$tmp/server.log" | head -1)
        [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return
        sleep 0.05
    done
    echo "server did not start:"; cat "$tmp/server.log"; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

rps() { # rps URL [wrk args...]: requests per second, or exit on any non-2xx answer
    local out
    out=$(wrk -t1 -c"$conns" -d"$duration" "$@")
    if echo "$out" | grep -q "Non-2xx"; then echo "$out"; echo "bench: non-2xx answers"; exit 1; fi
    echo "$out" | awk '/Requests\/sec/ {printf "%d", $2}'
}

# one measurement: ROW BIN -> req/s
measure() {
    local row=$1 bin=$2
    case $row in
    echo)
        start "$bin" --stateless --config "$tmp/noauth.lua"
        rps "http://127.0.0.1:$port/mcp" -s "$here/echo.lua"
        ;;
    auth)
        start "$bin" --stateless --dev --config "$tmp/dev.lua"
        "$bin" token --config "$tmp/dev.lua" --listen "127.0.0.1:$port" --scope mcp:tools \
            >"$tmp/one.txt" 2>/dev/null ||
            "$bin" token --config "$tmp/dev.lua" --scope mcp:tools >"$tmp/one.txt"
        LUAMCP_TOKENS=$tmp/one.txt rps "http://127.0.0.1:$port/mcp" -s "$here/echo.lua"
        ;;
    esac
    stop
}

median() { tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

rows="echo auth"
declare -A got
total=$((rounds * 2 * 2)) n=0
for r in $(seq "$rounds"); do
    for row in $rows; do
        for which in before after; do
            n=$((n + 1))
            printf '\r[%2d/%d] round %d, %-4s, %-6s' "$n" "$total" "$r" "$row" "$which" >&2
            bin=$before; [ "$which" = after ] && bin=$after
            got[$row.$which]="${got[$row.$which]:-} $(measure "$row" "$bin")"
        done
    done
done
printf '\r%60s\r' '' >&2

echo "luamcp hardening bench — $(date -u +%Y-%m-%d) — $(nproc) cores — wrk -t1 -c$conns -d$duration, median of $rounds"
echo "before: $base_ref ($before); after: $(git -C "$top" rev-parse --short HEAD) ($after)"
echo
printf "| %-36s | %12s | %12s | %6s |\n" "row" "before req/s" "after req/s" "after/before"
printf "|%s|%s|%s|%s|\n" "--------------------------------------" "--------------" "--------------" "--------"
: >"$tmp/plot.dat"
for row in $rows; do
    b=$(echo "${got[$row.before]}" | median)
    a=$(echo "${got[$row.after]}" | median)
    name="tools/call echo, stateless, no auth"
    [ "$row" = auth ] && name="tools/call echo, RS256 reused token"
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", a / b}')
    printf "| %-36s | %12s | %12s | %6s |\n" "$name" "$b" "$a" "$ratio"
    printf '"%s" %s %s\n' "$name" "$b" "$a" >>"$tmp/plot.dat"
done

if command -v gnuplot >/dev/null 2>&1; then
    gnuplot <<GP
set terminal svg size 720,360 font "sans,12"
set output "$here/hardening.svg"
set title "echo before and after the hardening (req/s, median of $rounds, same run)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set yrange [0:*]
set ylabel "requests per second"
set key top right
plot "$tmp/plot.dat" using 2:xtic(1) title "before ($base_ref)", '' using 3 title "after"
GP
    echo
    echo "chart: bench/hardening.svg"
fi
