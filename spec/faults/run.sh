#!/usr/bin/env bash
# run.sh FILE...: node --test FILE... with the descriptor limit raised first (connections.mjs
# holds 5,000 connections, and luamcp, started from it, as many). Node cannot raise its own.
set -euo pipefail
ulimit -n 20000 || { echo "run.sh: cannot raise the descriptor limit to 20000 (hard limit $(ulimit -Hn))" >&2; exit 1; }
exec "${NODE:-node}" --test "$@"
