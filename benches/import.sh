#!/usr/bin/env bash
# Roster import benchmark: the dry run and the commit of a synthetic roster of N households × 3
# members (default 10,000 × 3 = 30,000) into the demo data set's 建新社区, through
# `gridlight import` (the same functions as POST /imports and /imports/{id}/commit), then the
# same file again (a no-op). SQLite by default; GRIDLIGHT_DATABASE_URL=postgres://… for
# PostgreSQL (an empty database). BIN=target/debug/gridlight measures a debug build.
#   benches/import.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
bin=${BIN:-target/release/gridlight}
[ "$bin" = target/release/gridlight ] && cargo build --release --locked
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GRIDLIGHT_DATABASE_URL=${GRIDLIGHT_DATABASE_URL:-$work/bench.db}
export GRIDLIGHT_LOG=warn
# PostgreSQL takes its data key from the environment (SQLite keeps a key file beside the database).
case "$GRIDLIGHT_DATABASE_URL" in
  postgres*) export GRIDLIGHT_DATA_KEY=${GRIDLIGHT_DATA_KEY:-$("$bin" keys generate)} ;;
esac
"$bin" seed demo >/dev/null
case "$GRIDLIGHT_DATABASE_URL" in
  postgres*) community=$(psql -Atq "$GRIDLIGHT_DATABASE_URL" -c "SELECT id FROM communities WHERE name = '建新社区'") ;;
  *) community=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT id FROM communities WHERE name = ?", ("建新社区",)).fetchone()[0])' "$GRIDLIGHT_DATABASE_URL") ;;
esac
python3 benches/import_roster.py "$n" > "$work/roster.csv"
echo "roster: $n households, $(($(wc -l < "$work/roster.csv") - 1)) rows, $(du -h "$work/roster.csv" | cut -f1)"
measure() { local t0; t0=$(date +%s.%N); "$@" | grep -E '^(import|committed|  "(households|members)_new|  "rows_with)' ; echo "  wall $(echo "$(date +%s.%N) - $t0" | bc) s"; }
echo "== dry run";          measure "$bin" import "$work/roster.csv" --community "$community" --as jianxin.sec --dry-run
echo "== dry run + commit"; measure "$bin" import "$work/roster.csv" --community "$community" --as jianxin.sec
echo "== again (no-op)";    measure "$bin" import "$work/roster.csv" --community "$community" --as jianxin.sec
