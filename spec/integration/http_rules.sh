#!/usr/bin/env bash
# http_rules.sh — every rule of the luamcp HTTP contract (Streamable HTTP), checked against a
# running server with curl + jq. After every bad request a good request must be served.
#
#   http_rules.sh LUAMCP_BIN INTEGRATION_DIR FREE_PORT_BIN
#
# Output: "ok - name" / "not ok - name" (with the request and response), then "N passed, M failed".

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$HERE/lib.sh"

if (($# != 3)); then
  echo "usage: $0 LUAMCP_BIN INTEGRATION_DIR FREE_PORT_BIN" >&2
  exit 2
fi
harness_init "$1" "$2/fixtures" "$3"

ALL_TOOLS='["badresult","boom","echo","fail","hog","loop","nulls","progress","schema","structured"]'
NTOOLS=10
SUPPORTED='(supported: 2025-11-25, 2025-06-18, 2025-03-26)'

start_server main --config "$FIX/test.conf.lua"
start_server stateless --stateless --config "$FIX/test.conf.lua"
start_server tight --config "$FIX/tight.conf.lua"

use_server main
SRV_SID[main]=$(new_session) || { echo "FATAL: cannot open a session on the main server" >&2; exit 1; }
use_server tight
SRV_SID[tight]=$(new_session) || { echo "FATAL: cannot open a session on the tight server" >&2; exit 1; }

use_server main
SID=${SRV_SID[main]}
PORT=${SRV_PORT[main]}

# A body file of exactly $2 bytes holding a valid ping request (padded with spaces).
sized_ping() {
  local f=$1 size=$2 head='{"jsonrpc":"2.0","id":5,"method":"ping"'
  local pad=$((size - ${#head} - 1))
  { printf '%s' "$head"; head -c "$pad" /dev/zero | tr '\0' ' '; printf '}'; } >"$f"
}

############################################################################ basics

begin "healthz reports status, version and tool count"
req GET /healthz
expect_status 200
expect_ctype json
expect_json '{status, version, tools}' "{\"status\":\"ok\",\"version\":\"0.1.0\",\"tools\":$NTOOLS}"
expect_json '.bundle | {version, reloads, failures, last_error}' \
  '{"version":1,"reloads":0,"failures":0,"last_error":null}'
finish

begin "other paths -> 404 {\"error\":\"not found\"}"
req GET /nope
expect_status 404
expect_ctype json
expect_json . '{"error":"not found"}'
finish

begin "POST to a path below the endpoint -> 404"
printf '{"jsonrpc":"2.0","id":1,"method":"ping"}' >"$T/ping.json"
req POST /mcp/extra -H 'Content-Type: application/json' -H "Mcp-Session-Id: $SID" --data-binary "@$T/ping.json"
expect_status 404
expect_json . '{"error":"not found"}'
finish
good_after "404 path"

############################################################################ initialize

init_body() {
  printf '{"jsonrpc":"2.0","id":%s,"method":"initialize","params":{"protocolVersion":"%s","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}' "$1" "$2"
}

check_initialize() { # REQUESTED ANSWERED
  begin "initialize with $1 -> protocolVersion $2, fresh session id"
  local saved=$SID
  SID=""
  post "$(init_body 11 "$1")"
  SID=$saved
  expect_rpc_ok 11
  expect_json '.result.protocolVersion' "\"$2\""
  expect_json '.result.capabilities.tools' '{"listChanged":true}'
  expect_json '.result.capabilities.logging' '{}'
  expect_json '.result.capabilities.resources' '{"subscribe":true,"listChanged":true}'
  expect_json '.result.serverInfo.name' '"luamcp"'
  expect_json '.result.serverInfo.version' '"0.1.0"'
  local sid
  sid=$(hdr Mcp-Session-Id)
  [[ $sid =~ ^[0-9a-fA-F]{32}$ ]] || err "Mcp-Session-Id must be 32 hex chars, got '$sid'"
  [[ $sid != "$SID" ]] || err "a new initialize must not reuse an existing session id"
  finish
  LAST_INIT_SID=$sid
}
check_initialize 2025-11-25 2025-11-25
S1=$LAST_INIT_SID
check_initialize 2025-06-18 2025-06-18
S2=$LAST_INIT_SID
check_initialize 2025-03-26 2025-03-26
check_initialize 1999-01-01 2025-11-25

begin "two initializes get different session ids"
[[ -n $S1 && -n $S2 && $S1 != "$S2" ]] || err "session ids '$S1' and '$S2' must differ"
finish

begin "initialize with a session header -> 400 session already initialized"
post "$(init_body 12 2025-11-25)"
expect_rpc_error 400 -32600 "Invalid Request: session already initialized" any:12
finish
good_after "initialize with session header"

begin "notifications/initialized -> 202, empty body"
post '{"jsonrpc":"2.0","method":"notifications/initialized"}'
expect_status 202
expect_empty_body
finish

begin "ping -> {}"
post '{"jsonrpc":"2.0","id":"p-1","method":"ping"}'
expect_rpc_ok '"p-1"'
expect_json .result '{}'
finish

begin "string id echoed"
post '{"jsonrpc":"2.0","id":"abc-42","method":"ping"}'
expect_rpc_ok '"abc-42"'
finish

begin "id 0 echoed"
post '{"jsonrpc":"2.0","id":0,"method":"ping"}'
expect_rpc_ok 0
finish

begin "64-bit integer id echoed exactly"
post '{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}'
expect_status 200
[[ $BODY =~ \"id\":[[:space:]]*9007199254740993[^0-9] ]] || err "id 9007199254740993 not echoed verbatim"
finish

############################################################################ Host / Origin

check_host() { # HOST WANT(ok|403)
  begin "Host: $1 -> $2"
  post '{"jsonrpc":"2.0","id":21,"method":"ping"}' -H "Host: $1"
  if [[ $2 == ok ]]; then
    expect_rpc_ok 21
  else
    expect_rpc_error 403 -32600 "Forbidden: Host not allowed" null
    finish
    good_after "Host $1"
    return
  fi
  finish
}
check_host "localhost:$PORT" ok
check_host "localhost" ok
check_host "127.0.0.1" ok
check_host "[::1]:$PORT" ok
check_host "evil.example" 403
check_host "evil.example:$PORT" 403
check_host "localhost.evil.example" 403
check_host "127.0.0.1.evil.example:$PORT" 403

check_origin() { # ORIGIN WANT(ok|403)
  begin "Origin: $1 -> $2"
  post '{"jsonrpc":"2.0","id":22,"method":"ping"}' -H "Origin: $1"
  if [[ $2 == ok ]]; then
    expect_rpc_ok 22
    finish
  else
    expect_rpc_error 403 -32600 "Forbidden: Origin not allowed" null
    finish
    good_after "Origin $1"
  fi
}
check_origin "http://localhost:3000" ok
check_origin "http://localhost" ok
check_origin "https://127.0.0.1" ok
check_origin "http://[::1]:8080" ok
check_origin "https://app.example.test" ok
check_origin "http://evil.example" 403
check_origin "https://evil.example:443" 403
check_origin "http://localhost.evil.example" 403
check_origin "http://127.0.0.1.evil.example" 403
check_origin "null" 403
check_origin "http://app.example.test" 403

begin "hostile Origin on GET -> 403"
req GET /mcp -H "Origin: http://evil.example" -H 'Accept: text/event-stream' -H "Mcp-Session-Id: $SID"
expect_rpc_error 403 -32600 "Forbidden: Origin not allowed" null
finish
good_after "hostile Origin on GET"

begin "hostile Origin on DELETE -> 403 (and the session survives)"
req DELETE /mcp -H "Origin: http://evil.example" -H "Mcp-Session-Id: $SID"
expect_rpc_error 403 -32600 "Forbidden: Origin not allowed" null
finish
good_after "hostile Origin on DELETE"

############################################################################ order of checks

begin "order: bad Host before bad Origin"
post '{"jsonrpc":"2.0","id":1,"method":"ping"}' -H 'Host: evil.example' -H 'Origin: http://evil.example'
expect_rpc_error 403 -32600 "Forbidden: Host not allowed" null
finish

begin "order: bad Origin before bad method"
req PUT /mcp -H 'Origin: http://evil.example' -H 'Content-Type: application/json' --data-binary '{}'
expect_rpc_error 403 -32600 "Forbidden: Origin not allowed" null
finish

sized_ping "$T/big.json" $((1024 * 1024 + 1))
begin "order: method before body size (PUT with a 1 MiB + 1 body -> 405)"
req PUT /mcp -H 'Expect:' -H 'Content-Type: application/json' --data-binary "@$T/big.json"
expect_status 405
expect_header Allow "GET, POST, DELETE"
finish
good_after "PUT with big body"

begin "order: body size before Content-Type (413)"
post_file "$T/big.json" -H 'Content-Type: text/plain' -H "Mcp-Session-Id: $SID"
expect_rpc_error 413 -32600 "Request body too large" null
finish

begin "order: Content-Type before Accept (415)"
post '{"jsonrpc":"2.0","id":1,"method":"ping"}' -H 'Content-Type: text/plain' -H 'Accept: text/html'
expect_rpc_error 415 -32600 "Unsupported Media Type: Content-Type must be application/json" null
finish

begin "order: Accept before protocol version (406)"
ACCEPT=text/html post '{"jsonrpc":"2.0","id":1,"method":"ping"}' -H 'MCP-Protocol-Version: 1999-01-01'
expect_rpc_error 406 -32600 "Not Acceptable: Accept must allow application/json or text/event-stream" null
finish

begin "order: protocol version before parsing (400 -32600, not -32700)"
post '{"jsonrpc":' -H 'MCP-Protocol-Version: 1999-01-01'
expect_rpc_error 400 -32600 "Unsupported protocol version: 1999-01-01 $SUPPORTED" null
finish

begin "order: parse error before missing session (-32700)"
SID="" post '{"jsonrpc":'
expect_rpc_error 400 -32700 "Parse error" null
finish

begin "order: invalid request before missing session"
SID="" post '{"jsonrpc":"1.0","id":3,"method":"ping"}'
expect_rpc_error 400 -32600 "Invalid Request: *" 3
finish
good_after "order checks"

############################################################################ methods

check_method() {
  begin "$1 /mcp -> 405 with Allow"
  req "$1" /mcp -H 'Content-Type: application/json' -H "Mcp-Session-Id: $SID" --data-binary '{"jsonrpc":"2.0","id":1,"method":"ping"}'
  expect_rpc_error 405 -32600 "Method not allowed" null
  expect_header Allow "GET, POST, DELETE"
  finish
  good_after "$1"
}
check_method PUT
check_method PATCH
check_method OPTIONS

############################################################################ body size

begin "body of 1 MiB + 1 byte -> 413"
post_file "$T/big.json" -H 'Content-Type: application/json' -H "Mcp-Session-Id: $SID"
expect_rpc_error 413 -32600 "Request body too large" null
finish
good_after "413"

begin "body of 1 MiB + 1 byte with Expect: 100-continue -> 413"
req POST /mcp -H 'Expect: 100-continue' -H 'Content-Type: application/json' -H "Mcp-Session-Id: $SID" --data-binary "@$T/big.json"
expect_rpc_error 413 -32600 "Request body too large" null
finish
good_after "413 with Expect"

begin "chunked body of 1 MiB + 1 byte (no Content-Length) -> 413"
post_file "$T/big.json" -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/json' -H "Mcp-Session-Id: $SID"
expect_rpc_error 413 -32600 "Request body too large" null
finish
good_after "413 chunked"

sized_ping "$T/max.json" $((1024 * 1024))
begin "body of exactly 1 MiB is accepted"
post_file "$T/max.json" -H 'Content-Type: application/json' -H "Mcp-Session-Id: $SID"
expect_rpc_ok 5
expect_json .result '{}'
finish

############################################################################ Content-Type / Accept

check_ctype_rejected() {
  begin "Content-Type '$1' -> 415"
  if [[ -z $1 ]]; then
    printf '{"jsonrpc":"2.0","id":1,"method":"ping"}' >"$T/req.json"
    post_file "$T/req.json" -H 'Content-Type:' -H 'Accept: application/json' -H "Mcp-Session-Id: $SID"
  else
    post '{"jsonrpc":"2.0","id":1,"method":"ping"}' -H "Content-Type: $1"
  fi
  expect_rpc_error 415 -32600 "Unsupported Media Type: Content-Type must be application/json" null
  finish
  good_after "Content-Type '$1'"
}
check_ctype_rejected "text/plain"
check_ctype_rejected ""
check_ctype_rejected "application/json-patch+json"
check_ctype_rejected "application/x-www-form-urlencoded"

begin "Content-Type with charset parameter is accepted"
post '{"jsonrpc":"2.0","id":31,"method":"ping"}' -H 'Content-Type: application/json; charset=utf-8'
expect_rpc_ok 31
finish

check_accept_rejected() {
  begin "Accept '$1' -> 406"
  ACCEPT=$1 post '{"jsonrpc":"2.0","id":1,"method":"ping"}'
  expect_rpc_error 406 -32600 "Not Acceptable: Accept must allow application/json or text/event-stream" null
  finish
  good_after "Accept '$1'"
}
check_accept_rejected "text/html"
check_accept_rejected "application/xml, text/plain"

begin "no Accept header counts as JSON"
printf '{"jsonrpc":"2.0","id":32,"method":"ping"}' >"$T/req.json"
post_file "$T/req.json" -H 'Accept:' -H 'Content-Type: application/json' -H "Mcp-Session-Id: $SID"
expect_rpc_ok 32
finish

begin "Accept */* counts as JSON"
ACCEPT='*/*' post '{"jsonrpc":"2.0","id":33,"method":"ping"}'
expect_rpc_ok 33
finish

begin "Accept application/json only -> JSON"
ACCEPT='application/json' call_tool echo '{"text":"j"}' 34
expect_rpc_ok 34
expect_json .result.content '[{"type":"text","text":"j"}]'
finish

begin "Accept of both kinds, no notifications -> JSON (not SSE)"
call_tool echo '{"text":"both"}' 35
expect_rpc_ok 35
expect_json .result.content '[{"type":"text","text":"both"}]'
finish

begin "Accept text/event-stream only -> SSE with the response as the single event"
ACCEPT='text/event-stream' call_tool echo '{"text":"sse"}' 36
expect_status 200
expect_ctype sse
sse_events
((SSE_N == 1)) || err "expected exactly 1 SSE event, got $SSE_N"
expect_json '.id' 36 "$(sse_event last)"
expect_json '.result.content' '[{"type":"text","text":"sse"}]' "$(sse_event last)"
finish

begin "Accept text/event-stream only: a method error also comes as SSE (HTTP 200)"
ACCEPT='text/event-stream' post '{"jsonrpc":"2.0","id":37,"method":"no/such"}'
expect_status 200
expect_ctype sse
sse_events
((SSE_N == 1)) || err "expected exactly 1 SSE event, got $SSE_N"
expect_json '.error' '{"code":-32601,"message":"Method not found: no/such"}' "$(sse_event last)"
expect_json '.id' 37 "$(sse_event last)"
finish

begin "Accept text/event-stream only: initialize over SSE still issues a session"
saved=$SID
SID="" ACCEPT='text/event-stream' post "$(init_body 38 2025-11-25)"
SID=$saved
expect_status 200
expect_ctype sse
sse_events
expect_json '.result.protocolVersion' '"2025-11-25"' "$(sse_event last)"
[[ $(hdr Mcp-Session-Id) =~ ^[0-9a-fA-F]{32}$ ]] || err "no valid Mcp-Session-Id header on SSE initialize: '$(hdr Mcp-Session-Id)'"
finish

############################################################################ protocol version header

begin "unsupported MCP-Protocol-Version -> 400"
post '{"jsonrpc":"2.0","id":41,"method":"ping"}' -H 'MCP-Protocol-Version: 2024-11-05'
expect_rpc_error 400 -32600 "Unsupported protocol version: 2024-11-05 $SUPPORTED" null
finish
good_after "unsupported version"

begin "garbage MCP-Protocol-Version -> 400"
post '{"jsonrpc":"2.0","id":42,"method":"ping"}' -H 'MCP-Protocol-Version: banana'
expect_rpc_error 400 -32600 "Unsupported protocol version: banana $SUPPORTED" null
finish
good_after "garbage version"

begin "matching MCP-Protocol-Version is accepted"
post '{"jsonrpc":"2.0","id":43,"method":"ping"}' -H 'MCP-Protocol-Version: 2025-11-25'
expect_rpc_ok 43
finish

SID_0618=$(new_session 2025-06-18)
begin "session on 2025-06-18 accepts header 2025-06-18"
SID=$SID_0618 post '{"jsonrpc":"2.0","id":44,"method":"ping"}' -H 'MCP-Protocol-Version: 2025-06-18'
expect_rpc_ok 44
finish

begin "session on 2025-06-18 with header 2025-11-25 -> served (a supported version; SHOULD, not MUST)"
SID=$SID_0618 post '{"jsonrpc":"2.0","id":45,"method":"ping"}' -H 'MCP-Protocol-Version: 2025-11-25'
expect_status 200
expect_json '.id' 45
expect_json '.result' '{}'
finish

begin "session on 2025-06-18 still works after the mismatch"
SID=$SID_0618 post '{"jsonrpc":"2.0","id":46,"method":"ping"}'
expect_rpc_ok 46
finish

############################################################################ parsing / invalid requests

check_parse_error() { # NAME FILE
  begin "$1 -> 400 -32700 Parse error"
  post_file "$2" -H 'Content-Type: application/json' -H 'Accept: application/json' -H "Mcp-Session-Id: $SID"
  expect_rpc_error 400 -32700 "Parse error" null
  finish
  good_after "$1"
}
printf '{"jsonrpc":"2.0","id":1,"method":' >"$T/p1"
check_parse_error "malformed JSON" "$T/p1"
: >"$T/p2"
check_parse_error "empty body" "$T/p2"
printf '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"\xff\xfe bad"}}}' >"$T/p3"
check_parse_error "invalid UTF-8" "$T/p3"
printf '{"jsonrpc":"2.0","id":1,"method":"ping"} {"x":1}' >"$T/p4"
check_parse_error "trailing garbage after the object" "$T/p4"

check_invalid() { # NAME BODY MESSAGE ID
  begin "$1 -> 400 -32600"
  post "$2"
  expect_rpc_error 400 -32600 "$3" "$4"
  finish
  good_after "$1"
}
check_invalid "batch" '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]' \
  "Invalid Request: batches are not supported" null
check_invalid "empty batch" '[]' "Invalid Request: batches are not supported" null
check_invalid "body is a JSON string" '"ping"' "Invalid Request: *" null
check_invalid "body is a JSON number" '42' "Invalid Request: *" null
check_invalid "body is null" 'null' "Invalid Request: *" null
check_invalid "jsonrpc 1.0" '{"jsonrpc":"1.0","id":7,"method":"ping"}' "Invalid Request: *" 7
check_invalid "jsonrpc missing" '{"id":"a","method":"ping"}' "Invalid Request: *" '"a"'
check_invalid "jsonrpc as number" '{"jsonrpc":2.0,"id":8,"method":"ping"}' "Invalid Request: *" 8
check_invalid "method not a string" '{"jsonrpc":"2.0","id":9,"method":5}' "Invalid Request: *" 9
check_invalid "method missing" '{"jsonrpc":"2.0","id":10}' "Invalid Request: *" 10
check_invalid "id is a float" '{"jsonrpc":"2.0","id":1.5,"method":"ping"}' "Invalid Request: *" null
check_invalid "id is an object" '{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}' "Invalid Request: *" null
check_invalid "id is a boolean" '{"jsonrpc":"2.0","id":true,"method":"ping"}' "Invalid Request: *" null
check_invalid "id is null" '{"jsonrpc":"2.0","id":null,"method":"ping"}' "Invalid Request: *" null

############################################################################ sessions

check_no_session() { # NAME BODY
  begin "$1 without Mcp-Session-Id -> 400"
  SID="" post "$2"
  expect_rpc_error 400 -32600 "Bad Request: Mcp-Session-Id header is required" "any:${3:-null}"
  finish
  good_after "$1 without session"
}
check_no_session "ping" '{"jsonrpc":"2.0","id":51,"method":"ping"}' 51
check_no_session "tools/list" '{"jsonrpc":"2.0","id":52,"method":"tools/list"}' 52
check_no_session "tools/call" '{"jsonrpc":"2.0","id":53,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}' 53
check_no_session "notification" '{"jsonrpc":"2.0","method":"notifications/initialized"}'

begin "unknown session -> 404 -32001"
SID=0123456789abcdef0123456789abcdef post '{"jsonrpc":"2.0","id":54,"method":"ping"}'
expect_rpc_error 404 -32001 "Session not found" any:54
finish
good_after "unknown session"

begin "non-hex session id -> 404 -32001"
SID="not-a-session" post '{"jsonrpc":"2.0","id":55,"method":"ping"}'
expect_rpc_error 404 -32001 "Session not found" any:55
finish

begin "session header name is case-insensitive"
printf '{"jsonrpc":"2.0","id":56,"method":"ping"}' >"$T/req.json"
post_file "$T/req.json" -H 'Content-Type: application/json' -H 'Accept: application/json' -H "mcp-session-id: $SID"
expect_rpc_ok 56
finish

begin "DELETE without session -> 400"
req DELETE /mcp
expect_rpc_error 400 -32600 "Bad Request: Mcp-Session-Id header is required" null
finish
good_after "DELETE without session"

begin "DELETE unknown session -> 404"
req DELETE /mcp -H 'Mcp-Session-Id: ffffffffffffffffffffffffffffffff'
expect_rpc_error 404 -32001 "Session not found" null
finish
good_after "DELETE unknown session"

DEL_SID=$(new_session)
begin "DELETE a valid session -> 200 empty"
req DELETE /mcp -H "Mcp-Session-Id: $DEL_SID"
expect_status 200
expect_empty_body
finish

begin "POST on a deleted session -> 404"
SID=$DEL_SID post '{"jsonrpc":"2.0","id":57,"method":"ping"}'
expect_rpc_error 404 -32001 "Session not found" any:57
finish
good_after "deleted session"

begin "tools/call on a deleted session -> 404"
SID=$DEL_SID call_tool echo '{"text":"x"}' 58
expect_rpc_error 404 -32001 "Session not found" any:58
finish

begin "DELETE a deleted session -> 404"
req DELETE /mcp -H "Mcp-Session-Id: $DEL_SID"
expect_rpc_error 404 -32001 "Session not found" null
finish

begin "GET on a deleted session -> 404"
req GET /mcp -H 'Accept: text/event-stream' -H "Mcp-Session-Id: $DEL_SID"
expect_rpc_error 404 -32001 "Session not found" null
finish
good_after "deleted session GET"

############################################################################ notifications / client responses

check_202() {
  begin "$1 -> 202 empty"
  post "$2"
  expect_status 202
  expect_empty_body
  finish
}
check_202 "notification" '{"jsonrpc":"2.0","method":"notifications/initialized"}'
check_202 "unknown notification" '{"jsonrpc":"2.0","method":"notifications/whatever","params":{"x":1}}'
check_202 "cancel notification for an unknown request" '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":999}}'
good_after "notifications"

# A response is accepted (202) only when one of this session's calls waits for it (ctx.sample,
# ctx.elicit); an unknown id cannot be accepted, so 400 (spec: "MUST return an HTTP error").
for resp in '{"jsonrpc":"2.0","id":"srv-1","result":{}}' \
            '{"jsonrpc":"2.0","id":"srv-2","error":{"code":-32601,"message":"no"}}'; do
  begin "client JSON-RPC response nobody waits for -> 400"
  post "$resp"
  expect_rpc_error 400 -32600 "Bad Request: no request of this session waits for this response" null
  finish
done
good_after "stray responses"

############################################################################ method-level errors

begin "unknown method -> 200 -32601"
post '{"jsonrpc":"2.0","id":61,"method":"foo/bar"}'
expect_rpc_error 200 -32601 "Method not found: foo/bar" 61
finish
good_after "unknown method"

check_bad_params() { # NAME BODY ID
  begin "$1 -> 200 -32602"
  post "$2"
  expect_rpc_error 200 -32602 "Invalid params: *" "$3"
  finish
  good_after "$1"
}
check_bad_params "tools/call without params" '{"jsonrpc":"2.0","id":62,"method":"tools/call"}' 62
check_bad_params "tools/call params is an array" '{"jsonrpc":"2.0","id":63,"method":"tools/call","params":["echo"]}' 63
check_bad_params "tools/call without name" '{"jsonrpc":"2.0","id":64,"method":"tools/call","params":{"arguments":{}}}' 64
check_bad_params "tools/call name is a number" '{"jsonrpc":"2.0","id":65,"method":"tools/call","params":{"name":7}}' 65
check_bad_params "tools/call arguments is an array" '{"jsonrpc":"2.0","id":66,"method":"tools/call","params":{"name":"echo","arguments":["x"]}}' 66
check_bad_params "tools/call arguments is a string" '{"jsonrpc":"2.0","id":67,"method":"tools/call","params":{"name":"echo","arguments":"x"}}' 67
check_bad_params "tools/list cursor is a number" '{"jsonrpc":"2.0","id":68,"method":"tools/list","params":{"cursor":5}}' 68
check_bad_params "tools/list garbage cursor" '{"jsonrpc":"2.0","id":69,"method":"tools/list","params":{"cursor":"garbage!!"}}' 69

begin "unknown tool -> 200 -32602 Unknown tool"
call_tool nosuch '{}' 70
expect_rpc_error 200 -32602 "Unknown tool: nosuch" 70
finish
good_after "unknown tool"

############################################################################ tools/list

begin "tools/list (default page size) lists every tool once, no nextCursor"
post '{"jsonrpc":"2.0","id":71,"method":"tools/list"}'
expect_rpc_ok 71
expect_json '[.result.tools[].name] | sort' "$ALL_TOOLS"
expect_true '.result | has("nextCursor") | not' "no nextCursor on the only page"
expect_true '[.result.tools[] | (.name|type)=="string" and (.description|type)=="string" and (.inputSchema.type=="object")] | all' \
  "every tool has name, description and an object inputSchema"
finish
LIST=$BODY

begin "tools/list: echo definition intact (title, schema, annotations)"
expect_json '.result.tools[] | select(.name=="echo") | .title' '"Echo"' "$LIST"
expect_json '.result.tools[] | select(.name=="echo") | .description' '"Returns the text it is given"' "$LIST"
expect_json '.result.tools[] | select(.name=="echo") | .inputSchema' \
  '{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}' "$LIST"
expect_json '.result.tools[] | select(.name=="echo") | .annotations' '{"readOnlyHint":true}' "$LIST"
expect_true '.result.tools[] | select(.name=="echo") | has("handler") | not' "handler must not leak into tools/list" "$LIST"
finish

begin "tools/list: schema tool inputSchema intact"
expect_json '.result.tools[] | select(.name=="schema") | .inputSchema' '{
  "type":"object",
  "properties":{
    "name":{"type":"string","pattern":"^[a-z]+$"},
    "mode":{"type":"string","enum":["fast","slow"]},
    "count":{"type":"integer","minimum":1},
    "opts":{"type":"object","properties":{"level":{"type":"integer","minimum":0,"maximum":5}},"required":["level"]},
    "tags":{"type":"array","items":{"type":"string","minLength":1}}},
  "required":["name","mode"]}' "$LIST"
finish

begin "tools/list: structured outputSchema intact, empty schemas stay objects"
expect_json '.result.tools[] | select(.name=="structured") | .outputSchema' \
  '{"type":"object","properties":{"answer":{"type":"integer"},"list":{"type":"array","items":{"type":"integer"}}},"required":["answer","list"]}' "$LIST"
expect_json '.result.tools[] | select(.name=="nulls") | .inputSchema' '{"type":"object"}' "$LIST"
expect_true '[.result.tools[] | select(.name!="structured") | has("outputSchema")] | any | not' \
  "only 'structured' has an outputSchema" "$LIST"
finish

############################################################################ tool results

begin "tools/call echo"
call_tool echo '{"text":"hello, wörld"}' 81
expect_rpc_ok 81
expect_json .result.content '[{"type":"text","text":"hello, wörld"}]'
expect_true '.result.isError != true' "isError must not be true"
finish

begin "tools/call structured -> structuredContent + its JSON as text"
call_tool structured '{}' 82
expect_rpc_ok 82
expect_json .result.structuredContent '{"answer":42,"list":[1,2,3]}'
expect_json '.result.content | length' 1
expect_json '.result.content[0].type' '"text"'
expect_json '.result.content[0].text | fromjson' '{"answer":42,"list":[1,2,3]}'
expect_true '.result.isError != true' "isError must not be true"
finish

NULLS_ARGS='{"n":null,"ea":[],"eo":{},"mixed":[null,1,"s",[],{}],"deep":{"x":{"y":[]}},"i":9007199254740991,"f":1.5,"b":false}'
begin "tools/call nulls: null, [], {} and numbers round-trip"
call_tool nulls "$NULLS_ARGS" 83
expect_rpc_ok 83
expect_json .result.structuredContent "$NULLS_ARGS"
expect_json '.result.content[0].text | fromjson' "$NULLS_ARGS"
[[ $BODY == *9007199254740991* ]] || err "integer 9007199254740991 not kept exactly"
finish

begin "tools/call nulls without arguments -> {}"
post '{"jsonrpc":"2.0","id":84,"method":"tools/call","params":{"name":"nulls"}}'
expect_rpc_ok 84
expect_json .result.structuredContent '{}'
finish

begin "tools/call fail -> isError with 'nope'"
call_tool fail '{}' 85
expect_rpc_ok 85
expect_json .result.isError true
expect_json .result.content '[{"type":"text","text":"nope"}]'
finish
good_after "fail"

begin "tools/call boom -> isError, generic message, no error detail"
call_tool boom '{}' 86
expect_rpc_ok 86
expect_json .result.isError true
expect_json .result.content "[{\"type\":\"text\",\"text\":\"tool 'boom' failed (see server log)\"}]"
[[ $BODY != *kaboom* && $BODY != *secret-ish* ]] || err "the Lua error text leaked to the client"
finish
good_after "boom"

begin "boom: the error detail goes to the server log"
found=0
for ((i = 0; i < 20; i++)); do
  grep -q 'kaboom secret-ish detail' "${SRV_LOG[main]}" && { found=1; break; }
  sleep 0.1
done
((found)) || err "server log does not contain 'kaboom secret-ish detail'"
finish

begin "tools/call badresult -> isError, says not convertible"
call_tool badresult '{}' 87
expect_rpc_ok 87
expect_json .result.isError true
expect_true '.result.content[0].type == "text" and (.result.content[0].text | test("convert"; "i"))' \
  "text content mentioning that the result is not convertible"
finish
good_after "badresult"

ms() { date +%s%3N; }

begin "tools/call loop -> isError within the cpu budget"
t0=$(ms)
call_tool loop '{}' 88
t1=$(ms)
expect_rpc_ok 88
expect_json .result.isError true
expect_true '.result.content | length >= 1 and .[0].type == "text" and (.[0].text | length > 0)' "a text explaining the failure"
(((t1 - t0) < 5000)) || err "loop took $((t1 - t0)) ms with cpu_ms = 200"
finish
good_after "loop"

begin "tools/call hog -> isError (memory cap)"
t0=$(ms)
call_tool hog '{}' 89
t1=$(ms)
expect_rpc_ok 89
expect_json .result.isError true
expect_true '.result.content | length >= 1 and .[0].type == "text"' "a text explaining the failure"
(((t1 - t0) < 10000)) || err "hog took $((t1 - t0)) ms"
finish
good_after "hog"

begin "tools/call hog a second time -> isError again"
call_tool hog '{}' 90
expect_rpc_ok 90
expect_json .result.isError true
finish

begin "after hog and loop, structured results still work"
call_tool structured '{}' 91
expect_rpc_ok 91
expect_json .result.structuredContent '{"answer":42,"list":[1,2,3]}'
finish

############################################################################ schema validation

begin "schema: valid arguments reach the handler"
call_tool schema '{"name":"abc","mode":"fast","count":3,"opts":{"level":5},"tags":["a","b"]}' 100
expect_rpc_ok 100
expect_json .result.content '[{"type":"text","text":"valid abc fast"}]'
expect_true '.result.isError != true' "isError must not be true"
finish

check_schema() { # NAME TOOL ARGS PREFIX [MUST_CONTAIN]
  begin "schema violation: $1"
  call_tool "$2" "$3" 101
  expect_rpc_ok 101
  expect_json .result.isError true
  expect_json '.result.content | length' 1
  expect_json '.result.content[0].type' '"text"'
  expect_prefix '.result.content[0].text' "$4"
  [[ -n ${5:-} ]] && expect_contains '.result.content[0].text' "$5"
  finish
  good_after "schema $1"
}
check_schema "missing required property" schema '{"mode":"fast"}' 'Invalid arguments: $' 'name'
check_schema "pattern" schema '{"name":"ABC","mode":"fast"}' 'Invalid arguments: $.name: '
check_schema "enum" schema '{"name":"abc","mode":"medium"}' 'Invalid arguments: $.mode: '
check_schema "minimum" schema '{"name":"abc","mode":"fast","count":0}' 'Invalid arguments: $.count: '
check_schema "integer given a string" schema '{"name":"abc","mode":"fast","count":"3"}' 'Invalid arguments: $.count: '
check_schema "integer given a fraction" schema '{"name":"abc","mode":"fast","count":1.5}' 'Invalid arguments: $.count: '
check_schema "nested maximum" schema '{"name":"abc","mode":"fast","opts":{"level":9}}' 'Invalid arguments: $.opts.level: '
check_schema "nested required" schema '{"name":"abc","mode":"slow","opts":{}}' 'Invalid arguments: $.opts' 'level'
check_schema "nested type" schema '{"name":"abc","mode":"slow","opts":[]}' 'Invalid arguments: $.opts: '
check_schema "items minLength" schema '{"name":"abc","mode":"fast","tags":["ok",""]}' 'Invalid arguments: $.tags[1]: '
check_schema "items type" schema '{"name":"abc","mode":"fast","tags":["ok","fine",5]}' 'Invalid arguments: $.tags[2]: '
check_schema "echo text is a number" echo '{"text":5}' 'Invalid arguments: $.text: '
check_schema "echo without arguments" echo '{}' 'Invalid arguments: $' 'text'

############################################################################ progress

PROG1='{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"tok-1","progress":1,"total":2,"message":"half"}}'
PROG2='{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"tok-1","progress":2,"total":2,"message":"done"}}'

begin "progress with a progressToken -> SSE: two notifications, then the response"
post '{"jsonrpc":"2.0","id":110,"method":"tools/call","params":{"name":"progress","arguments":{},"_meta":{"progressToken":"tok-1"}}}'
expect_status 200
expect_ctype sse
sse_events
((SSE_N == 3)) || err "expected 3 SSE events, got $SSE_N"
expect_json . "$PROG1" "$(sse_event 1)"
expect_json . "$PROG2" "$(sse_event 2)"
expect_json '{id, content: .result.content}' '{"id":110,"content":[{"type":"text","text":"ok"}]}' "$(sse_event 3)"
finish
good_after "progress"

begin "progress with an integer progressToken keeps it an integer"
post '{"jsonrpc":"2.0","id":111,"method":"tools/call","params":{"name":"progress","arguments":{},"_meta":{"progressToken":99}}}'
expect_status 200
expect_ctype sse
sse_events
((SSE_N == 3)) || err "expected 3 SSE events, got $SSE_N"
expect_json '[.params.progressToken, .params.progress]' '[99,1]' "$(sse_event 1)"
expect_json '[.params.progressToken, .params.progress]' '[99,2]' "$(sse_event 2)"
expect_json '.id' 111 "$(sse_event 3)"
finish

begin "progress without a progressToken -> plain JSON"
call_tool progress '{}' 112
expect_rpc_ok 112
expect_json .result.content '[{"type":"text","text":"ok"}]'
finish

begin "progress with a token but Accept application/json only -> plain JSON"
ACCEPT=application/json post '{"jsonrpc":"2.0","id":113,"method":"tools/call","params":{"name":"progress","arguments":{},"_meta":{"progressToken":"tok-2"}}}'
expect_rpc_ok 113
expect_json .result.content '[{"type":"text","text":"ok"}]'
finish

############################################################################ keep-alive

begin "keep-alive: two requests on one connection"
printf '{"jsonrpc":"2.0","id":120,"method":"ping"}' >"$T/ka1.json"
printf '{"jsonrpc":"2.0","id":121,"method":"tools/call","params":{"name":"echo","arguments":{"text":"ka"}}}' >"$T/ka2.json"
REQ_DESC="two POST /mcp in one curl (--next)"
STATUS="(see below)"
BODY=""
ka=$(curl -sS --max-time 20 \
  -H 'Content-Type: application/json' -H 'Accept: application/json' -H "Mcp-Session-Id: $SID" \
  --data-binary "@$T/ka1.json" -o "$T/ka1.out" -w '%{http_code} %{num_connects}\n' "$BASE/mcp" \
  --next \
  -H 'Content-Type: application/json' -H 'Accept: application/json' -H "Mcp-Session-Id: $SID" \
  --data-binary "@$T/ka2.json" -o "$T/ka2.out" -w '%{http_code} %{num_connects}\n' "$BASE/mcp" 2>&1)
[[ $ka == $'200 1\n200 0' ]] || err "expected '200 1' then '200 0' (status, new connections), got: $(tr '\n' '|' <<<"$ka")"
expect_json .id 120 "$(cat "$T/ka1.out")"
expect_json .result.content '[{"type":"text","text":"ka"}]' "$(cat "$T/ka2.out")"
finish

############################################################################ GET stream

begin "GET without session -> 400"
req GET /mcp -H 'Accept: text/event-stream'
expect_rpc_error 400 -32600 "Bad Request: Mcp-Session-Id header is required" null
finish
good_after "GET without session"

begin "GET unknown session -> 404"
req GET /mcp -H 'Accept: text/event-stream' -H 'Mcp-Session-Id: 00000000000000000000000000000000'
expect_rpc_error 404 -32001 "Session not found" null
finish

begin "GET with Accept lacking text/event-stream -> 406 (checked before the session)"
req GET /mcp -H 'Accept: application/json'
expect_status 406
expect_ctype json
expect_json .error.code -32600
expect_prefix .error.message "Not Acceptable"
expect_json .id null
finish
good_after "GET 406"

GET_SID=$(new_session)
# open_stream N — background GET on GET_SID; headers in $T/getN.hdrs.
open_stream() {
  : >"$T/get$1.hdrs"
  curl -sS -N --max-time 60 -H 'Accept: text/event-stream' -H "Mcp-Session-Id: $GET_SID" \
    -D "$T/get$1.hdrs" -o "$T/get$1.body" "$BASE/mcp" 2>"$T/get$1.err" &
  GET_PID=$!
  BG_PIDS+=("$GET_PID")
  local i
  for ((i = 0; i < 50; i++)); do
    grep -q $'^\r$' "$T/get$1.hdrs" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

begin "GET opens an SSE stream (200, text/event-stream)"
REQ_DESC="GET /mcp (background, session $GET_SID)"
if open_stream 1; then
  STATUS=$(head -n 1 "$T/get1.hdrs" | awk '{print $2}')
  cp "$T/get1.hdrs" "$T/hdrs"
  BODY=""
  expect_status 200
  expect_ctype sse
else
  STATUS="no headers within 5 s"
  err "the GET stream did not send its response headers within 5 s"
fi
kill -0 "$GET_PID" 2>/dev/null || err "the GET stream closed at once ($(cat "$T/get1.err"))"
finish
FIRST_GET=$GET_PID

begin "a second GET on the same session replaces the first stream"
REQ_DESC="GET /mcp again (background, session $GET_SID)"
if open_stream 2; then
  STATUS=$(head -n 1 "$T/get2.hdrs" | awk '{print $2}')
  cp "$T/get2.hdrs" "$T/hdrs"
  BODY=""
  expect_status 200
  expect_ctype sse
else
  STATUS="no headers within 5 s"
  err "the second GET stream did not send its response headers within 5 s"
fi
SECOND_GET=$GET_PID
# the first stream must end promptly (the server closes it), the second must stay open
ended=""
for ((i = 0; i < 50; i++)); do
  kill -0 "$FIRST_GET" 2>/dev/null || { ended=1; break; }
  sleep 0.1
done
[[ -n $ended ]] || err "the first stream was not closed within 5 s of the second GET"
kill -0 "$SECOND_GET" 2>/dev/null || err "the second stream closed ($(cat "$T/get2.err"))"
finish
good_after "second GET"

begin "the session with an open stream still serves POSTs"
SID=$GET_SID call_tool echo '{"text":"while-streaming"}' 130
expect_rpc_ok 130
expect_json .result.content '[{"type":"text","text":"while-streaming"}]'
finish

begin "DELETE of the session ends its open stream"
SID=$GET_SID req DELETE /mcp -H "Mcp-Session-Id: $GET_SID"
expect_status 200
ended=""
for ((i = 0; i < 50; i++)); do
  kill -0 "$SECOND_GET" 2>/dev/null || { ended=1; break; }
  sleep 0.1
done
[[ -n $ended ]] || err "the stream of a deleted session stayed open for 5 s"
finish
good_after "DELETE with an open stream"

############################################################################ stateless server

use_server stateless
SID=""

begin "stateless: initialize issues no Mcp-Session-Id"
post "$(init_body 200 2025-06-18)"
expect_rpc_ok 200
expect_json .result.protocolVersion '"2025-06-18"'
expect_no_header Mcp-Session-Id
finish

begin "stateless: tools/call without any session"
call_tool echo '{"text":"solo"}' 201
expect_rpc_ok 201
expect_json .result.content '[{"type":"text","text":"solo"}]'
finish

begin "stateless: tools/list without initialize"
post '{"jsonrpc":"2.0","id":202,"method":"tools/list"}'
expect_rpc_ok 202
expect_json '[.result.tools[].name] | sort' "$ALL_TOOLS"
finish

begin "stateless: notification -> 202"
post '{"jsonrpc":"2.0","method":"notifications/initialized"}'
expect_status 202
expect_empty_body
finish

begin "stateless: progress over SSE"
post '{"jsonrpc":"2.0","id":203,"method":"tools/call","params":{"name":"progress","arguments":{},"_meta":{"progressToken":"tok-1"}}}'
expect_status 200
expect_ctype sse
sse_events
((SSE_N == 3)) || err "expected 3 SSE events, got $SSE_N"
expect_json . "$PROG1" "$(sse_event 1)"
expect_json '.id' 203 "$(sse_event 3)"
finish

check_stateless_405() { # METHOD MESSAGE (GET/DELETE: the contract fixes only status and Allow)
  begin "stateless: $1 -> 405 Allow: POST"
  req "$1" /mcp -H 'Accept: text/event-stream'
  expect_rpc_error 405 -32600 "$2" null
  expect_header Allow "POST"
  finish
  good_after "stateless $1"
}
check_stateless_405 GET "Method not allowed*"
check_stateless_405 DELETE "Method not allowed*"
check_stateless_405 PUT "Method not allowed"

begin "stateless: hostile Origin -> 403"
post '{"jsonrpc":"2.0","id":204,"method":"ping"}' -H 'Origin: http://evil.example'
expect_rpc_error 403 -32600 "Forbidden: Origin not allowed" null
finish

begin "stateless: malformed JSON -> 400 -32700"
post '{'
expect_rpc_error 400 -32700 "Parse error" null
finish
good_after "stateless malformed"

############################################################################ tight server: pagination, body limit, hosts

use_server tight
SID=${SRV_SID[tight]}

begin "pagination (page_size 2): the nextCursor chain covers every tool exactly once"
names='[]'
cursor=""
pages=0
sizes=""
while ((pages < 20)); do
  if [[ -z $cursor ]]; then
    post '{"jsonrpc":"2.0","id":300,"method":"tools/list"}'
  else
    post "$(jq -cn --arg c "$cursor" '{jsonrpc:"2.0",id:301,method:"tools/list",params:{cursor:$c}}')"
  fi
  pages=$((pages + 1))
  if [[ $STATUS != 200 ]] || ! jq -e '.result.tools' >/dev/null 2>&1 <<<"$BODY"; then
    err "page $pages failed"
    break
  fi
  sizes+="$(jq '.result.tools | length' <<<"$BODY") "
  names=$(jq -c --argjson acc "$names" '$acc + [.result.tools[].name]' <<<"$BODY")
  if jq -e '.result | has("nextCursor")' >/dev/null <<<"$BODY"; then
    cursor=$(jq -r '.result.nextCursor' <<<"$BODY")
    jq -e '.result.nextCursor | type == "string" and length > 0' >/dev/null <<<"$BODY" ||
      err "nextCursor must be a non-empty string on page $pages"
  else
    break
  fi
done
[[ $sizes == "2 2 2 2 2 " ]] || err "page sizes: expected '2 2 2 2 2', got '$sizes'"
expect_json 'sort' "$ALL_TOOLS" "$names"
finish

begin "pagination: garbage cursor -> -32602"
post '{"jsonrpc":"2.0","id":302,"method":"tools/list","params":{"cursor":"not-a-real-cursor"}}'
expect_rpc_error 200 -32602 "Invalid params*" 302
finish
good_after "garbage cursor"

sized_ping "$T/b4096.json" 4096
sized_ping "$T/b4097.json" 4097
begin "max_body_bytes 4096: a 4096-byte body is accepted"
post_file "$T/b4096.json" -H 'Content-Type: application/json' -H "Mcp-Session-Id: $SID"
expect_rpc_ok 5
finish

begin "max_body_bytes 4096: a 4097-byte body -> 413"
post_file "$T/b4097.json" -H 'Content-Type: application/json' -H "Mcp-Session-Id: $SID"
expect_rpc_error 413 -32600 "Request body too large" null
finish
good_after "tight 413"

begin "allowed_hosts: a configured Host is accepted"
post '{"jsonrpc":"2.0","id":303,"method":"ping"}' -H 'Host: mcp.example.test'
expect_rpc_ok 303
finish

begin "allowed_hosts: another Host -> 403"
post '{"jsonrpc":"2.0","id":304,"method":"ping"}' -H 'Host: other.example.test'
expect_rpc_error 403 -32600 "Forbidden: Host not allowed" null
finish
good_after "tight bad host"

############################################################################ survivors

for name in main stateless tight; do
  begin "server '$name' is still running and healthy"
  use_server "$name"
  kill -0 "${SRV_PID[$name]}" 2>/dev/null || err "server process ${SRV_PID[$name]} is gone"
  req GET /healthz
  expect_status 200
  finish
done

harness_summary
