#!/usr/bin/env bash
# Contract checks against a running server:
#   1. openapi/openapi.json is a valid OpenAPI document (openapi-spec-validator);
#   2. schemathesis, every phase and every check, against `gridlight serve --demo`, as a
#      community secretary (jianxin.sec) and as a grid worker (jianxin.w01), each with an
#      outsider of another community (shunhua.sec, shunhua.w01) who must not see their objects,
#      and each on both backends: SQLite, and PostgreSQL (a fresh database in the cluster of
#      GRIDLIGHT_TEST_POSTGRES_URL, which .ci/run starts; without it the script fails unless
#      CONTRACT_BACKENDS=sqlite is set by hand).
# Zero failures are allowed. Needs python3 and the package registry (PyPI) only; the pinned
# tools go into a virtualenv under target/. Fuzzes target/debug/gridlight as `cargo build` makes
# it (without the dev-dependencies' features that `cargo test` builds into it).
#
# Bounded: CONTRACT_MAX_EXAMPLES per operation and phase (default 50) and CONTRACT_MAX_TIME
# seconds per identity and backend (default 75; fuzzing and stateful runs repeat until it is
# spent), with a fixed CONTRACT_SEED: about 7 minutes in all on 2 cores. Arguments are passed on to
# `schemathesis run` (e.g. `--include-operation-id create_visit` while debugging).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

max_examples=${CONTRACT_MAX_EXAMPLES:-50}
max_time=${CONTRACT_MAX_TIME:-75}
backends=${CONTRACT_BACKENDS:-sqlite postgres}
seed=${CONTRACT_SEED:-20261127}
bin=$(realpath -m "${CARGO_TARGET_DIR:-target}/debug/gridlight")
venv=target/contract-venv
requirements=.ci/contract-requirements.txt

step() { printf '\n=== %s\n' "$*"; }

step "contract tools (pinned in $requirements)"
cargo build --locked --quiet
stamp="$venv/.requirements"
if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements"
  cp "$requirements" "$stamp"
fi
"$venv/bin/schemathesis" --version

step "openapi/openapi.json is a valid OpenAPI document"
"$venv/bin/openapi-spec-validator" openapi/openapi.json

work=$(mktemp -d)
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT

# A fresh `gridlight serve --demo` with its own database: each identity starts from the demo
# data (a secretary's run may deactivate the grid worker or change their password). Tokens
# outlive the run; failed logins (the fuzzer tries many) never lock the demo accounts; no
# background reconcile job.
start_server() {
  local dir="$work/$1" backend=$2 url
  mkdir -p "$dir"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  base="http://127.0.0.1:$port"
  log="$dir/server.log"
  case "$backend" in
    sqlite) url="$dir/gridlight.db" ;;
    postgres)
      if [ -z "${GRIDLIGHT_TEST_POSTGRES_URL:-}" ]; then
        echo "FAIL: GRIDLIGHT_TEST_POSTGRES_URL is not set (set CONTRACT_BACKENDS=sqlite to skip PostgreSQL by hand)" >&2
        exit 1
      fi
      local db="contract_$(date +%s%N)"
      local psql
      psql=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n 1)
      "$psql" -q "$GRIDLIGHT_TEST_POSTGRES_URL" -c "CREATE DATABASE $db" >/dev/null
      url="${GRIDLIGHT_TEST_POSTGRES_URL%/*}/$db"
      ;;
  esac
  GRIDLIGHT_DATABASE_URL="$url" \
    GRIDLIGHT_JWT_SECRET="contract-run-secret-contract-run-secret-0123" \
    GRIDLIGHT_DATA_KEY="Y29udHJhY3QtcnVuLWRhdGEta2V5LWNvbnRyYWN0LTA=" \
    GRIDLIGHT_BIND="127.0.0.1:$port" \
    GRIDLIGHT_ACCESS_TOKEN_TTL=86400 \
    GRIDLIGHT_LOGIN_MAX_FAILURES=1000000000 \
    GRIDLIGHT_RECONCILE_INTERVAL_SECS=0 \
    GRIDLIGHT_SQLITE_SYNCHRONOUS=normal \
    GRIDLIGHT_LOG=warn \
    "$bin" serve --demo >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 300); do
    if curl -fsS "$base/readyz" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      cat "$log" >&2
      echo "FAIL: the server did not start" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "FAIL: the server was not ready in 60 s" >&2
  exit 1
}

token() {
  curl -fsS "$base/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"username\": \"$1\", \"password\": \"gridlight-demo\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

status=0
for backend in $backends; do
for who in jianxin.sec jianxin.w01; do
  run="$who-$backend"
  step "schemathesis as $who against gridlight serve --demo on $backend"
  start_server "$run" "$backend"
  # The run's user ("owner") and an outsider: the same role in another community. The
  # object_level_authorization check replays the owner's reads as the outsider, who must get
  # none of them (schemathesis.toml, [auth.wfc]).
  outsider=${who/jianxin/shunhua}
  auth_file="$work/$run/auth.json"
  python3 - "$auth_file" "$(token "$who")" "$(token "$outsider")" <<'PY'
import json, sys
path, owner, outsider = sys.argv[1:4]
users = [("owner", owner), ("outsider", outsider)]
auth = [{"name": n, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {t}"}]} for n, t in users]
with open(path, "w") as f:
    json.dump({"auth": auth}, f)
PY
  # Every check runs: schemathesis enables all of them, and the hook's, unless configured (no
  # `--checks all`, which would override the one per-operation exception in schemathesis.toml).
  # One worker: CPython 3.11 parses source in hypothesis from several threads and then raises
  # "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905). From the
  # throwaway directory, where schemathesis keeps its cache of failures.
  if ! (cd "$work/$run" && CONTRACT_WFC_AUTH="$auth_file" SCHEMATHESIS_HOOKS="$root/.ci/contract_checks.py" \
    "$root/$venv/bin/schemathesis" \
    --config-file "$root/.ci/schemathesis.toml" run "$base/openapi.json" \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$max_examples" \
    --max-time "$max_time" \
    --seed "$seed" \
    --workers 1 \
    --request-timeout 20 \
    --generation-database none \
    --no-color \
    --report junit --report-dir "$root/target/contract-report/$run" \
    "$@"); then
    status=1
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "FAIL: the server died" >&2
    status=1
  fi
  stop_server
  if grep -qiE 'panicked|internal error' "$log"; then
    echo "FAIL: the server logged internal errors:" >&2
    grep -iE 'panicked|internal error' "$log" | head -20 >&2
    status=1
  fi
done
done

if [ "$status" -ne 0 ]; then
  echo "FAIL: contract checks found problems (reports in target/contract-report/)" >&2
  exit 1
fi
echo "contract checks passed"
