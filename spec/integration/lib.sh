# shellcheck shell=bash
# lib.sh — harness for the bash integration tests: start/stop luamcp on a free loopback port,
# send requests with curl, assert on status/headers/JSON with jq, print TAP-like lines.
#
# Usage (from a test script):  source lib.sh; harness_init BIN FIXTURES_DIR FREE_PORT_BIN
# Every server started here is killed when the script exits, whatever the reason.

set -u

PASS=0
FAIL=0
declare -A SRV_PORT=() SRV_PID=() SRV_LOG=() SRV_SID=()
BG_PIDS=()
T=""
BASE=""
CUR_SRV=""
GOOD_SEQ=0

harness_init() {
  BIN=$1
  FIX=$2
  FREE_PORT=$3
  local tool
  for tool in curl jq; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "FATAL: '$tool' is required by the integration tests but is not installed" >&2
      exit 2
    fi
  done
  if [[ ! -x $BIN ]]; then
    echo "FATAL: server binary '$BIN' does not exist or is not executable" >&2
    exit 2
  fi
  if [[ ! -x $FREE_PORT ]]; then
    echo "FATAL: free_port helper '$FREE_PORT' does not exist" >&2
    exit 2
  fi
  T=$(mktemp -d "${TMPDIR:-/tmp}/luamcp-it.XXXXXX")
  trap harness_cleanup EXIT
  trap 'echo "# interrupted" >&2; exit 130' INT TERM
}

harness_cleanup() {
  local rc=$?
  local p name
  for p in "${BG_PIDS[@]}"; do
    kill "$p" 2>/dev/null
  done
  for name in "${!SRV_PID[@]}"; do
    stop_server "$name"
  done
  if ((rc != 0 || FAIL > 0)) && [[ -n $T ]]; then
    for name in "${!SRV_LOG[@]}"; do
      if [[ -s ${SRV_LOG[$name]} ]]; then
        echo "# ---- last lines of server '$name' log ----"
        tail -n 40 "${SRV_LOG[$name]}" | sed 's/^/#   /'
      fi
    done
  fi
  [[ -n $T ]] && rm -rf "$T"
  exit "$rc"
}

# True when process $1 owns a listening TCP socket on 127.0.0.1:$2 (checked through /proc, so a
# server of another test that happens to answer on the same port is never mistaken for ours).
owns_listener() {
  local pid=$1 port=$2 hex inodes ino
  [[ -r /proc/net/tcp ]] || return 0
  hex=$(printf '%04X' "$port")
  inodes=$(awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { print $10 }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null)
  local fd
  for ino in $inodes; do
    for fd in "/proc/$pid/fd/"*; do
      [[ $(readlink "$fd" 2>/dev/null) == "socket:[$ino]" ]] && return 0
    done
  done
  return 1
}

# start_server NAME [server args...] — starts `luamcp serve` on a free port with the fixture
# tools and waits for /healthz. Retries on another port if the bind lost a race.
start_server() {
  local name=$1
  shift
  local attempt port pid i code log="$T/server-$name.log"
  SRV_LOG[$name]=$log
  for attempt in 1 2 3 4 5; do
    port=$("$FREE_PORT") || { echo "FATAL: free_port failed" >&2; exit 2; }
    echo "# starting server '$name': $BIN serve --listen 127.0.0.1:$port --scripts $FIX/tools $*" >>"$log"
    "$BIN" serve --listen "127.0.0.1:$port" --scripts "$FIX/tools" "$@" >>"$log" 2>&1 &
    pid=$!
    for ((i = 0; i < 150; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      code=$(curl -s --max-time 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")
      if [[ $code == 200 ]] && owns_listener "$pid" "$port"; then
        SRV_PORT[$name]=$port
        SRV_PID[$name]=$pid
        echo "# server '$name' (pid $pid) is up on 127.0.0.1:$port"
        return 0
      fi
      sleep 0.1
    done
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    echo "# server '$name' did not come up on port $port (attempt $attempt)"
  done
  echo "FATAL: could not start server '$name'; its log:" >&2
  sed 's/^/#   /' "$log" >&2
  exit 1
}

stop_server() {
  local name=$1 pid=${SRV_PID[$1]:-} i
  [[ -n $pid ]] || return 0
  kill "$pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  unset "SRV_PID[$name]"
}

# use_server NAME — later requests go to that server.
use_server() {
  CUR_SRV=$1
  BASE="http://127.0.0.1:${SRV_PORT[$1]}"
}

# ---------------------------------------------------------------- requests

# req METHOD PATH [curl args...] — sets STATUS, BODY; headers in $T/hdrs.
req() {
  local method=$1 path=$2
  shift 2
  REQ_DESC="$method $path"
  local a
  for a in "$@"; do
    case $a in
      @*) REQ_DESC+=" [body: $(head -c 300 "${a#@}" | tr -d '\0' | tr '\n' ' ')$( (($(wc -c <"${a#@}") > 300)) && echo "... ($(wc -c <"${a#@}") bytes)")]" ;;
      -*) ;;
      *) REQ_DESC+=" '$a'" ;;
    esac
  done
  : >"$T/hdrs"
  : >"$T/body"
  STATUS=$(curl -sS --max-time "${REQ_TIMEOUT:-20}" -X "$method" -o "$T/body" -D "$T/hdrs" \
    -w '%{http_code}' "$@" "$BASE$path" 2>"$T/curl.err")
  local rc=$?
  if ((rc != 0)); then
    STATUS="${STATUS:-000} (curl exit $rc: $(tr '\n' ' ' <"$T/curl.err"))"
  fi
  BODY=$(cat "$T/body")
}

# post_file FILE [curl args...] — POST /mcp with exactly the given headers and no defaults.
post_file() {
  local f=$1
  shift
  req POST /mcp -H 'Expect:' "$@" --data-binary "@$f"
}

# post JSON [curl args...] — POST /mcp with Content-Type application/json, Accept of both kinds
# (or $ACCEPT), and the current session (SID) when set. A Content-Type or Accept header among the
# extra args replaces the default one (curl would otherwise send both).
post() {
  printf '%s' "$1" >"$T/req.json"
  shift
  local defaults=() a has_ct=0 has_acc=0
  for a in "$@"; do
    [[ ${a,,} == content-type:* ]] && has_ct=1
    [[ ${a,,} == accept:* ]] && has_acc=1
  done
  ((has_ct)) || defaults+=(-H 'Content-Type: application/json')
  ((has_acc)) || defaults+=(-H "Accept: ${ACCEPT:-application/json, text/event-stream}")
  [[ -n ${SID:-} ]] && defaults+=(-H "Mcp-Session-Id: $SID")
  post_file "$T/req.json" "${defaults[@]}" "$@"
}

# Last value of response header $1 (case-insensitive), without CR.
hdr() {
  grep -i "^$1:" "$T/hdrs" | tail -n 1 | sed 's/^[^:]*:[[:space:]]*//; s/\r$//; s/[[:space:]]*$//'
}

# ---------------------------------------------------------------- checks

begin() {
  CHECK=$1
  ERRS=()
}

err() { ERRS+=("$1"); }

finish() {
  if ((${#ERRS[@]} == 0)); then
    PASS=$((PASS + 1))
    echo "ok - $CHECK"
    return 0
  fi
  FAIL=$((FAIL + 1))
  echo "not ok - $CHECK"
  local e
  for e in "${ERRS[@]}"; do
    echo "#   $e"
  done
  echo "#   request:  ${REQ_DESC:-}"
  echo "#   response: HTTP ${STATUS:-?}, Content-Type: $(hdr Content-Type), body: $(head -c 700 <<<"${BODY:-}" | tr '\n' '|')"
  return 1
}

expect_status() {
  [[ $STATUS == "$1" ]] || err "HTTP status: expected $1, got $STATUS"
}

expect_header() { # NAME VALUE (exact)
  local v
  v=$(hdr "$1")
  [[ $v == "$2" ]] || err "header $1: expected '$2', got '$v'"
}

expect_no_header() {
  local v
  v=$(grep -ci "^$1:" "$T/hdrs")
  ((v == 0)) || err "header $1 must be absent, got '$(hdr "$1")'"
}

expect_ctype() { # json | sse
  local ct
  ct=$(hdr Content-Type)
  case $1 in
    json) [[ ${ct,,} =~ ^application/json[[:space:]]*(;.*)?$ ]] || err "Content-Type: expected application/json, got '$ct'" ;;
    sse) [[ ${ct,,} =~ ^text/event-stream[[:space:]]*(;.*)?$ ]] || err "Content-Type: expected text/event-stream, got '$ct'" ;;
  esac
}

expect_empty_body() {
  [[ -z $BODY ]] || err "body must be empty, got: $(head -c 200 <<<"$BODY")"
}

# expect_json FILTER EXPECTED_JSON [DOC] — jq FILTER applied to DOC (default BODY) must equal
# EXPECTED_JSON (compared canonically, key order ignored).
expect_json() {
  local filter=$1 want=$2 doc=${3-$BODY} got wantc
  if ! got=$(jq -cS "$filter" <<<"$doc" 2>/dev/null); then
    err "$filter: response is not JSON (or filter failed)"
    return
  fi
  wantc=$(jq -cS . <<<"$want")
  [[ $got == "$wantc" ]] || err "$filter: expected $wantc, got $got"
}

# expect_true JQ_BOOL_FILTER DESCRIPTION [DOC]
expect_true() {
  local filter=$1 what=$2 doc=${3-$BODY}
  if ! jq -e "$filter" <<<"$doc" >/dev/null 2>&1; then
    err "$what (jq: $filter)"
  fi
}

expect_prefix() { # FILTER PREFIX
  local got
  got=$(jq -r "$1" <<<"$BODY" 2>/dev/null)
  [[ $got == "$2"* ]] || err "$1: expected to start with '$2', got '$got'"
}

expect_contains() { # FILTER SUBSTRING
  local got
  got=$(jq -r "$1" <<<"$BODY" 2>/dev/null)
  [[ $got == *"$2"* ]] || err "$1: expected to contain '$2', got '$got'"
}

# A JSON-RPC error response: STATUS CODE MESSAGE ID_JSON. MESSAGE ending in '*' is a prefix.
expect_rpc_error() {
  local status=$1 code=$2 msg=$3 id=$4
  expect_status "$status"
  expect_ctype json
  expect_json '.jsonrpc' '"2.0"'
  expect_json '.error.code' "$code"
  if [[ $msg == *'*' ]]; then
    expect_prefix '.error.message' "${msg%\*}"
  else
    expect_json '.error.message' "$(jq -n --arg m "$msg" '$m')"
  fi
  if [[ $id == any:* ]]; then # any:ID — the request id or null, but present
    expect_true "has(\"id\") and (.id == ${id#any:} or .id == null)" "id must be present and be ${id#any:} or null"
  else
    expect_json '.id' "$id"
  fi
  expect_true 'has("result") | not' "an error response must not carry a result"
}

# A successful JSON-RPC response over application/json with the given id.
expect_rpc_ok() {
  local id=$1
  expect_status 200
  expect_ctype json
  expect_json '.jsonrpc' '"2.0"'
  expect_json '.id' "$id"
  expect_true 'has("result") and (has("error") | not)' "response must have a result and no error"
}

# ---------------------------------------------------------------- SSE

# sse_events — parses BODY as an SSE stream into $T/events (one JSON message per line).
# Each event must be "event: message\ndata: <json>\n\n"; id: lines and comments are tolerated.
sse_events() {
  : >"$T/events"
  if grep -q $'\r' "$T/body"; then
    err "SSE body contains CR characters; events must be separated by LF only"
  fi
  local tail2
  tail2=$(tail -c 2 "$T/body" | od -An -tx1 | tr -d ' \n')
  [[ $tail2 == 0a0a ]] || err "SSE body must end with a blank line (\\n\\n), ends with bytes '$tail2'"
  if ! awk 'BEGIN { RS = ""; FS = "\n"; bad = 0 }
    {
      ev = 0; nd = 0; data = ""; other = 0
      for (i = 1; i <= NF; i++) {
        line = $i
        if (line == "event: message") ev++
        else if (substr(line, 1, 6) == "data: ") { nd++; data = substr(line, 7) }
        else if (substr(line, 1, 1) == ":" || substr(line, 1, 3) == "id:") other++
        else { print "unexpected SSE line: " line > "/dev/stderr"; bad = 1 }
      }
      if (ev == 0 && nd == 0) next
      if (ev != 1 || nd != 1) { print "SSE event without exactly one \"event: message\" and one \"data:\" line: " $0 > "/dev/stderr"; bad = 1 }
      print data
    }
    END { exit bad }' "$T/body" >"$T/events" 2>"$T/sse.err"; then
    err "malformed SSE: $(tr '\n' ' ' <"$T/sse.err")"
  fi
  SSE_N=$(grep -c . "$T/events") # read by the test scripts
  local line n=0
  while IFS= read -r line; do
    n=$((n + 1))
    jq -e . >/dev/null 2>&1 <<<"$line" || err "SSE event $n data is not JSON: $line"
  done <"$T/events"
}

# Nth SSE event (1-based), or the last with "last".
sse_event() {
  if [[ $1 == last ]]; then tail -n 1 "$T/events"; else sed -n "${1}p" "$T/events"; fi
}

# ---------------------------------------------------------------- MCP helpers

# new_session [PROTOCOL_VERSION] — initialize + notifications/initialized on the current
# server; prints the session id (empty on failure, with the reason on stderr).
new_session() {
  local v=${1:-2025-11-25} sid saved=${SID:-}
  SID=""
  post "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"$v\",\"capabilities\":{},\"clientInfo\":{\"name\":\"http_rules\",\"version\":\"1\"}}}"
  sid=$(hdr Mcp-Session-Id)
  if [[ $STATUS != 200 || -z $sid ]]; then
    echo "# initialize failed: HTTP $STATUS, session '$sid', body: $BODY" >&2
    SID=$saved
    return 1
  fi
  SID=$sid
  post '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  SID=$saved
  printf '%s' "$sid"
}

# call_tool NAME ARGS_JSON [ID] — tools/call on the current server/session.
call_tool() {
  post "{\"jsonrpc\":\"2.0\",\"id\":${3:-1},\"method\":\"tools/call\",\"params\":{\"name\":\"$1\",\"arguments\":$2}}"
}

# good_after NAME — the "next request is served normally" check: a tools/call echo on the
# current server (with its known-good session) must succeed.
good_after() {
  GOOD_SEQ=$((GOOD_SEQ + 1))
  local text="alive-$GOOD_SEQ" saved=${SID:-} savedacc=${ACCEPT:-}
  SID=${SRV_SID[$CUR_SRV]:-}
  unset ACCEPT
  begin "$1: next request served normally"
  call_tool echo "{\"text\":\"$text\"}" 4242
  expect_rpc_ok 4242
  expect_json '.result.content' "[{\"type\":\"text\",\"text\":\"$text\"}]"
  expect_true '.result.isError != true' "echo must not be an error"
  finish
  SID=$saved
  [[ -n $savedacc ]] && ACCEPT=$savedacc
  return 0
}

harness_summary() {
  echo "$PASS passed, $FAIL failed"
  ((FAIL == 0))
}
