# shellcheck shell=bash
# lib.sh — what the kit's tests share: a temp dir with a copy of the repository's scripts and
# policies (as a newcomer's project starts), checks that print TAP-like lines, and cleanup of
# every server started here.

set -u

PASS=0
FAIL=0
SERVER_PID=""

kit_init() {
  BIN=$(realpath "$1")
  SRC=$(realpath "$2")
  [[ -x $BIN ]] || { echo "FATAL: $BIN is not an executable" >&2; exit 2; }
  T=$(mktemp -d "${TMPDIR:-/tmp}/luamcp-kit.XXXXXX")
  trap kit_cleanup EXIT
  cp -r "$SRC/scripts" "$SRC/policies" "$T/"
  cd "$T" || exit 2
}

kit_cleanup() {
  local rc=$?
  if [[ -n $SERVER_PID ]]; then
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  if ((rc != 0 || FAIL > 0)) && [[ -f $T/server.log ]]; then
    echo "# ---- server log ----"
    tail -n 40 "$T/server.log" | sed 's/^/#   /'
  fi
  rm -rf "$T"
  exit "$rc"
}

# check NAME COMMAND...: runs the command, counts and prints the outcome.
check() {
  local name=$1
  shift
  if "$@"; then
    PASS=$((PASS + 1))
    echo "ok - $name"
  else
    FAIL=$((FAIL + 1))
    echo "not ok - $name"
  fi
}

contains() { [[ $1 == *"$2"* ]] || { echo "#   expected to find: $2"; echo "#   in: $1"; false; }; }
lacks() { [[ $1 != *"$2"* ]] || { echo "#   did not expect: $2"; echo "#   in: $1"; false; }; }

# The files under the current directory, one per line, sorted: what a command left behind.
tree() { find . -path ./.luamcp -prune -o -path ./luacheck.out -prune -o -print | LC_ALL=C sort; }

kit_finish() {
  echo "# $PASS passed, $FAIL failed"
  ((FAIL == 0))
}
