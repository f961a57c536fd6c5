#!/usr/bin/env bash
# examples.sh — runs every shell and Lua example of README.md and docs/*.md, so the docs cannot
# drift from the behaviour.
#
# Usage: examples.sh LUAMCP_BIN FREE_PORT_BIN SOURCE_DIR MCP_SO [NODE_MODULES]
#
# An example is a fenced block at the start of a line whose info string begins with sh or lua;
# the words after the language say what it is (docs/README.md, "How the examples are tested"):
#   ```sh                   run by bash (set -euo pipefail) in a scratch checkout, against a
#                           `luamcp serve --dev` this script started; 127.0.0.1:8080 in the
#                           text is replaced by that server's port. Each block runs on its own.
#   ```lua file=PATH        written to PATH in the scratch checkout before the server starts;
#                           scripts/… is a tool file, policies/… a policy file, spec/… a busted
#                           spec, anything else a configuration file
#   ```lua tool|policy|config|spec   the same, in a file of its own that no other block sees
#   ```lua written=PATH     checked in page order, after the examples before it ran: the block
#                           is the file PATH of the checkout (one a command wrote), or a run of
#                           its consecutive lines (an excerpt), as the text shows it
#   ```js                   an ES module run by node in the scratch checkout, with NODE_MODULES
#                           (spec/integration/sdk's: the MCP TypeScript SDK) as its node_modules
#                           and TOKEN set to a fresh `luamcp token`; 8080 replaced as for sh
#   ```sh no-test REASON (lua, js too)   not run; counted, and the reason printed
# A block right after an example with the info string `output` lists lines that example's
# standard output must contain (each line, trimmed, as a substring). A shell example without
# one fails when its output holds a JSON-RPC error or a tool result with "isError":true.
# Any other sh or lua block (no kind, an unknown word, no-test without a reason) fails the run.
# Relative links and their #anchors are checked too. KEEP_T=1 keeps the scratch directory.

set -u

BIN=$1
FREE_PORT=$2
SRC=$3
MCP_SO=$4
NODE_MODULES=${5:-}

for tool in curl jq busted lua5.4 node timeout; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "FATAL: '$tool' is required by the docs examples test but is not installed" >&2
    exit 2
  fi
done
[[ -x $BIN ]] || { echo "FATAL: server binary '$BIN' is not executable" >&2; exit 2; }
[[ -f $MCP_SO ]] || { echo "FATAL: mcp module '$MCP_SO' does not exist" >&2; exit 2; }

T=$(mktemp -d "${TMPDIR:-/tmp}/luamcp-docs.XXXXXX")
SRV_PID=""
cleanup() {
  local rc=$?
  if [[ -n $SRV_PID ]]; then
    kill "$SRV_PID" 2>/dev/null
    wait "$SRV_PID" 2>/dev/null
  fi
  if ((rc != 0)) && [[ -s $T/server.log ]]; then
    echo "# ---- last lines of the server's log ----"
    tail -n 30 "$T/server.log" | sed 's/^/#   /'
  fi
  if [[ -n ${KEEP_T:-} ]]; then echo "# kept $T (KEEP_T)"; else rm -rf "$T"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "# interrupted" >&2; exit 130' INT TERM

# The scratch checkout: what a reader has after `make build`, with the shipped scripts and
# policies, the spec helpers and editor types, the kit's .luarc.json and .luacheckrc,
# ./build/luamcp and build/plain/mcp.so; `luamcp` is on PATH too.
CO=$T/repo
mkdir -p "$CO/build/plain" "$CO/spec/lua" "$T/bin"
cp -r "$SRC/scripts" "$SRC/policies" "$SRC/.luarc.json" "$SRC/.luacheckrc" "$CO/"
cp "$SRC/spec/lua/helper.lua" "$SRC/spec/lua/policy_helper.lua" "$CO/spec/lua/"
cp -r "$SRC/spec/lua/types" "$CO/spec/lua/"
ln -s "$BIN" "$CO/build/luamcp"
ln -s "$BIN" "$T/bin/luamcp"
ln -s "$MCP_SO" "$CO/build/plain/mcp.so"
export PATH="$T/bin:$PATH"

# Cut every fenced block into $T/blocks/N, one line per block in $T/index:
# N<TAB>doc:line<TAB>info string. Only fences at the start of a line count.
mkdir -p "$T/blocks"
: >"$T/index"
n=0
for doc in "$SRC/README.md" "$SRC"/docs/*.md; do
  rel=${doc#"$SRC"/}
  n=$(awk -v rel="$rel" -v dir="$T/blocks" -v n="$n" -v index_file="$T/index" '
    !inside && /^```/ {
      inside = 1; n++; info = substr($0, 4); sub(/^[ \t]+/, "", info); sub(/[ \t]+$/, "", info)
      printf "%d\t%s:%d\t%s\n", n, rel, NR, info >> index_file
      out = dir "/" n; printf "" > out; next
    }
    inside && /^```[ \t]*$/ { inside = 0; close(out); next }
    inside { print > out }
    END {
      if (inside) { printf "%s: a fenced block opened here never closes\n", rel > "/dev/stderr"; exit 1 }
      print n
    }' "$doc") || exit 1
done

PASS=0
FAIL=0
NOTEST=0
ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
not_ok() {
  FAIL=$((FAIL + 1))
  echo "not ok - $1"
  [[ -n ${2:-} && -s $2 ]] && awk 'NR <= 40 { print "#   " $0 }' "$2"
}

# Reads the index into arrays, and checks each block's kind before anything runs.
declare -a WHERE=() BLANG=() KIND=() ARG=() EXPECT=()
prev_example=""
while IFS=$'\t' read -r i where info; do
  lang=${info%% *}
  rest=""
  [[ $info == *" "* ]] && rest=${info#* }
  WHERE[i]=$where
  BLANG[i]=$lang
  KIND[i]=""
  case $lang in
    output)
      if [[ -z $prev_example ]]; then
        not_ok "$where: an output block follows no example"
      else
        EXPECT[prev_example]=$i
      fi
      prev_example=""
      continue
      ;;
    sh | lua | js) ;;
    *) prev_example=""; continue ;;
  esac
  prev_example=$i
  case $rest in
    no-test*)
      reason=${rest#no-test}
      reason=${reason#[: ]}
      reason=${reason# }
      if [[ -z $reason ]]; then
        not_ok "$where: '$lang no-test' without a reason"
      else
        KIND[i]=no-test
        ARG[i]=$reason
      fi
      ;;
    "")
      if [[ $lang == sh ]]; then KIND[i]=run; elif [[ $lang == js ]]; then KIND[i]=node; else not_ok "$where: a lua block with no kind (tool, policy, config, spec, file=PATH or no-test REASON)"; fi
      ;;
    file=*)
      path=${rest#file=}
      if [[ $lang != lua || $path == /* || $path == *..* || $path == *" "* ]]; then
        not_ok "$where: bad '$info' (lua file=RELATIVE_PATH)"
      else
        case $path in
          scripts/*) KIND[i]=tool ;;
          policies/*) KIND[i]=policy ;;
          spec/*) KIND[i]=spec ;;
          *) KIND[i]=config ;;
        esac
        ARG[i]=$path
      fi
      ;;
    written=*)
      path=${rest#written=}
      if [[ $lang != lua || $path == /* || $path == *..* || $path == *" "* ]]; then
        not_ok "$where: bad '$info' (lua written=RELATIVE_PATH)"
      else
        KIND[i]=written
        ARG[i]=$path
      fi
      ;;
    tool | policy | config | spec)
      if [[ $lang == lua ]]; then KIND[i]=$rest; else not_ok "$where: '$info' is not a kind of shell example"; fi
      ;;
    *) not_ok "$where: unknown example kind '$info'" ;;
  esac
done <"$T/index"

# The files blocks name go into the checkout first: the server serves them, later examples
# call them.
for i in "${!KIND[@]}"; do
  if [[ -n ${ARG[i]:-} && ${KIND[i]} != no-test && ${KIND[i]} != written ]]; then
    mkdir -p "$(dirname "$CO/${ARG[i]}")"
    cp "$T/blocks/$i" "$CO/${ARG[i]}"
  fi
done

# The server the shell examples talk to, as `make run` starts it, on a free port. The dev
# issuer's key and the admin socket are also reachable under port 8080's names, so
# `luamcp token` and `luamcp status` work without --listen, as the examples write them.
start_server() {
  local attempt i code
  for attempt in 1 2 3 4 5; do
    PORT=$("$FREE_PORT") || { echo "FATAL: free_port failed" >&2; exit 2; }
    (cd "$CO" && exec luamcp serve --dev --listen "127.0.0.1:$PORT") >>"$T/server.log" 2>&1 &
    SRV_PID=$!
    for ((i = 0; i < 150; i++)); do
      kill -0 "$SRV_PID" 2>/dev/null || break
      code=$(curl -s --max-time 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")
      if [[ $code == 200 && -S $CO/.luamcp/admin-$PORT.sock ]]; then
        ln -sf "dev-issuer-$PORT.json" "$CO/.luamcp/dev-issuer-8080.json"
        ln -sf "admin-$PORT.sock" "$CO/.luamcp/admin-8080.sock"
        echo "# server (pid $SRV_PID) is up on 127.0.0.1:$PORT"
        return 0
      fi
      sleep 0.1
    done
    kill "$SRV_PID" 2>/dev/null
    wait "$SRV_PID" 2>/dev/null
    SRV_PID=""
    echo "# the server did not come up on port $PORT (attempt $attempt)"
  done
  echo "FATAL: could not start the server; its log:" >&2
  sed 's/^/#   /' "$T/server.log" >&2
  exit 1
}
start_server

# True when every line of block $2 (trimmed, port replaced) occurs in file $1.
expect_lines() {
  local out=$1 exp=$2 line
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line//127.0.0.1:8080/127.0.0.1:$PORT}
    line=$(sed 's/^[[:space:]]*//; s/[[:space:]]*$//' <<<"$line")
    [[ -z $line ]] && continue
    if ! grep -qF -- "$line" "$out"; then
      echo "expected in the output: $line" >>"$out.why"
      return 1
    fi
  done <"$exp"
}

run_node() {
  local i=$1 body=$CO/docs-example-$1.mjs out=$T/out-$1 rc
  : >"$out.why"
  if [[ -z $NODE_MODULES || ! -d $NODE_MODULES/@modelcontextprotocol/sdk ]]; then
    echo "no MCP SDK in '$NODE_MODULES' (the sdk_node_modules fixture installs it)" >"$out.why"
    not_ok "${WHERE[i]} js" "$out.why"
    return
  fi
  [[ -e $CO/node_modules ]] || ln -s "$NODE_MODULES" "$CO/node_modules"
  sed "s/127\.0\.0\.1:8080/127.0.0.1:$PORT/g" "$T/blocks/$i" >"$body"
  (cd "$CO" && TOKEN=$(luamcp token) timeout 60 node "$body") >"$out" 2>&1
  rc=$?
  if ((rc != 0)); then
    echo "exit status $rc" >>"$out.why"
  elif [[ -n ${EXPECT[i]:-} ]]; then
    expect_lines "$out" "$T/blocks/${EXPECT[i]}" || rc=1
  fi
  if ((rc == 0)); then
    ok "${WHERE[i]} js"
  else
    cat "$out" >>"$out.why"
    not_ok "${WHERE[i]} js" "$out.why"
  fi
}

# A reader pauses between two commands; the test does not. When a block changed a file the
# server watches, wait (up to 5 s) for the reload that change starts on its own, so the next
# block sees what a reader would. No reload in time is no failure here: the next example
# that needs it fails instead.
watched() { find "$CO/scripts" "$CO/policies" -printf '%p %i %s %T@\n' | sort; }
settle() {
  local before=$1 stamp=$2 k
  watched | cmp -s - "$stamp" && return 0
  for ((k = 0; k < 50; k++)); do
    (($(grep -c 'reload (files changed)' "$T/server.log") > before)) && return 0
    sleep 0.1
  done
  echo "# no reload (files changed) within 5 s of ${WHERE[i]}"
}

run_sh() {
  local i=$1 body=$T/run-$1.sh out=$T/out-$1 rc
  {
    echo "set -euo pipefail"
    sed "s/127\.0\.0\.1:8080/127.0.0.1:$PORT/g; s/localhost:8080/localhost:$PORT/g" "$T/blocks/$i"
  } >"$body"
  local reloads stamp=$T/watched-$1
  reloads=$(grep -c 'reload (files changed)' "$T/server.log")
  watched >"$stamp"
  (cd "$CO" && timeout 60 bash "$body") >"$out" 2>&1
  rc=$?
  settle "$reloads" "$stamp"
  : >"$out.why"
  if ((rc != 0)); then
    echo "exit status $rc" >>"$out.why"
  elif [[ -n ${EXPECT[i]:-} ]]; then
    expect_lines "$out" "$T/blocks/${EXPECT[i]}" || rc=1
  elif grep -qE '"error":[[:space:]]*\{|"isError":[[:space:]]*true' "$out"; then
    echo "the output holds a JSON-RPC error or an isError result" >>"$out.why"
    rc=1
  fi
  if ((rc == 0)); then
    ok "${WHERE[i]} sh"
  else
    cat "$out" >>"$out.why"
    not_ok "${WHERE[i]} sh" "$out.why"
  fi
}

# `luamcp check` over a scripts and a policies directory; $3 names the example.
check_dirs() {
  local scripts=$1 policies=$2 what=$3 out=$T/check.out
  if (cd "$CO" && luamcp check --scripts "$scripts" --policies "$policies") >"$out" 2>&1; then
    ok "$what"
  else
    not_ok "$what" "$out"
  fi
}

# A `lua written=PATH` block: the file PATH as a command wrote it, whole or a run of its lines.
check_written() {
  local i=$1 file=$CO/${ARG[$1]} out=$T/out-$1
  local where="${WHERE[i]} lua written=${ARG[i]}"
  if [[ ! -s $T/blocks/$i ]]; then
    echo "an empty block shows nothing of ${ARG[i]}" >"$out"
    not_ok "$where" "$out"
  elif [[ ! -f $file ]]; then
    echo "no file ${ARG[i]} in the checkout (the examples before this one should write it)" >"$out"
    not_ok "$where" "$out"
  elif awk 'NR == FNR { want[++n] = $0; next }
            { have[++m] = $0 }
            END {
              for (s = 0; s + n <= m; s++) {
                for (k = 1; k <= n && have[s + k] == want[k]; k++) {}
                if (k > n) exit 0
              }
              exit 1
            }' "$T/blocks/$i" "$file"; then
    ok "$where"
  else
    { echo "the block is not ${ARG[i]} (nor a run of its lines); the file is:"; cat "$file"; } >"$out"
    not_ok "$where" "$out"
  fi
}

run_lua() {
  local i=$1 kind=${KIND[$1]} dir=$T/lua-$1 out=$T/out-$1
  local where="${WHERE[i]} lua $kind"
  mkdir -p "$dir/scripts" "$dir/policies"
  case $kind in
    tool)
      cp "$T/blocks/$i" "$dir/scripts/example.lua"
      check_dirs "$dir/scripts" "$dir/policies" "$where"
      ;;
    policy)
      # Bound to the checkout's scripts, so a rule may name the tools the docs ship.
      cp "$T/blocks/$i" "$dir/policies/example.lua"
      check_dirs "$CO/scripts" "$dir/policies" "$where"
      ;;
    config)
      # In the checkout's root: relative paths in it are relative to the file.
      local file=${ARG[i]:-docs-example-$i.lua}
      [[ -n ${ARG[i]:-} ]] || cp "$T/blocks/$i" "$CO/$file"
      if (cd "$CO" && luamcp check --config "$file") >"$out" 2>&1; then ok "$where"; else not_ok "$where" "$out"; fi
      ;;
    spec)
      local file=${ARG[i]:-spec/lua/docs_example_${i}_spec.lua}
      [[ -n ${ARG[i]:-} ]] || cp "$T/blocks/$i" "$CO/$file"
      # as the docs say to run one: `luamcp test FILE` (busted with this build's mcp module)
      if (cd "$CO" && timeout 60 luamcp test "$file") >"$out" 2>&1 &&
        grep -qE '(^|[^0-9])[1-9][0-9]* success' "$out"; then
        ok "$where" # a spec that ran no test at all proves nothing
      else
        not_ok "$where" "$out"
      fi
      ;;
  esac
}

for ((i = 1; i <= n; i++)); do
  case ${KIND[i]:-} in
    "") ;;
    no-test)
      NOTEST=$((NOTEST + 1))
      echo "# not run: ${WHERE[i]} ${BLANG[i]}: ${ARG[i]}"
      ;;
    run) run_sh "$i" ;;
    written) check_written "$i" ;;
    node) run_node "$i" ;;
    *) run_lua "$i" ;;
  esac
done

# Every relative link of the pages names a file of the source tree, and its #anchor a heading
# of that page (GitHub's rule: lower case, punctuation dropped, spaces to hyphens). The pages
# other branches of issue 17 add are allowed to be missing until they land.
PENDING=""
anchors_of() {
  awk '/^```/ { inside = !inside; next }
       !inside && /^#+[ \t]/ {
         h = tolower($0); sub(/^#+[ \t]+/, "", h); sub(/[ \t]+$/, "", h)
         gsub(/[^a-z0-9 _-]/, "", h); gsub(/ /, "-", h); print h
       }' "$1"
}
for doc in "$SRC/README.md" "$SRC"/docs/*.md; do
  rel=${doc#"$SRC"/}
  bad=$T/links-bad
  : >"$bad"
  while IFS=$'\t' read -r line link; do
    path=${link%%#*}
    frag=""
    [[ $link == *"#"* ]] && frag=${link#*#}
    if [[ -z $path ]]; then
      target=$rel
    else
      target=$(realpath -m --relative-to="$SRC" "$(dirname "$doc")/$path")
    fi
    if [[ ! -e $SRC/$target ]]; then
      [[ " $PENDING " == *" $target "* ]] || echo "$rel:$line: $link: no file $target" >>"$bad"
    elif [[ -n $frag && $target == *.md ]] && ! anchors_of "$SRC/$target" | grep -qxF -- "$frag"; then
      echo "$rel:$line: $link: no heading for #$frag in $target" >>"$bad"
    fi
  done < <(awk '/^```/ { inside = !inside; next }
                !inside {
                  s = $0
                  while (match(s, /\]\([^) \t]+\)/)) {
                    l = substr(s, RSTART + 2, RLENGTH - 3); s = substr(s, RSTART + RLENGTH)
                    if (l !~ /^[a-z]+:/) printf "%d\t%s\n", NR, l
                  }
                }' "$doc")
  if [[ -s $bad ]]; then not_ok "$rel: links" "$bad"; else ok "$rel: links"; fi
done

# Every file the blocks placed loads together with the shipped ones, as the server has them.
if (cd "$CO" && luamcp check) >"$T/check-all.out" 2>&1; then
  ok "the checkout with every placed file passes luamcp check"
else
  not_ok "the checkout with every placed file passes luamcp check" "$T/check-all.out"
fi

echo "# $PASS passed, $FAIL failed, $NOTEST marked no-test (not run)"
if ((PASS + FAIL + NOTEST < 10)); then
  echo "not ok - only $((PASS + FAIL + NOTEST)) examples found: the blocks were not read"
  exit 1
fi
((FAIL == 0))
