#!/usr/bin/env bash
# Request-path benchmark: starts `gemba serve --demo` (release build) on a
# fresh database and measures, with ApacheBench (`ab`, Debian package
# apache2-utils), the requests per second of one nested read (50 work items
# with parent and unit) by the program manager over CONNECTIONS (default 32)
# keep-alive connections, REQUESTS (default 20000) per run, RUNS (default 3)
# runs. It does so twice: with the authentication cache and the tree
# snapshot turned off (GEMBA_AUTH_CACHE_TTL_MS=0, GEMBA_TREE_CACHE_TTL_MS=0),
# then with the defaults. Cost budgets are off so that they do not answer 429.
#   bash docs/bench/request.sh            # SQLite in a temporary directory
#   DB=postgres bash docs/bench/request.sh
# PostgreSQL: GEMBA_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
connections="${CONNECTIONS:-32}"
requests="${REQUESTS:-20000}"
runs="${RUNS:-3}"
port="${PORT:-18182}"
command -v ab >/dev/null || { echo "needs ab (apt-get install apache2-utils)"; exit 1; }
# BIN: a gemba binary to measure instead of building this checkout's.
if [ -n "${BIN:-}" ]; then
  bin="$BIN"
else
  cargo build --release -q -p gemba --manifest-path "$root/Cargo.toml"
  bin="${CARGO_TARGET_DIR:-$root/target}/release/gemba"
fi
work="$(mktemp -d)"
pid=""
pg="${GEMBA_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
stop() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  pid=""
}
cleanup() {
  stop
  if [ "${DB:-sqlite}" = postgres ]; then psql "$pg" -qc "DROP DATABASE IF EXISTS gemba_bench_request WITH (FORCE)" >/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT
export GEMBA_JWT_SECRET="${GEMBA_JWT_SECRET:-bench-secret-bench-secret-bench-secret!}"
export GEMBA_BUDGET_POINTS=0
if [ "${DB:-sqlite}" = postgres ]; then
  psql "$pg" -qc "DROP DATABASE IF EXISTS gemba_bench_request WITH (FORCE)"
  psql "$pg" -qc "CREATE DATABASE gemba_bench_request"
  export GEMBA_DATABASE_URL="${pg%/*}/gemba_bench_request"
else
  export GEMBA_DATABASE_URL="sqlite://$work/gemba.db?mode=rwc"
fi
query='{"query":"{ organization { workItems(first: 50) { nodes { key title parent { key title } unit { key name } } } } }"}'
printf '%s' "$query" >"$work/query.json"

# Starts the server with the given environment; the first start seeds.
start() {
  (
    cd "$work"
    exec env "$@" GEMBA_BIND="127.0.0.1:$port" GEMBA_LOG=warn "$bin" serve --demo >>"$work/out.log" 2>>"$work/err.log"
  ) &
  pid=$!
  for _ in $(seq 1 120); do
    curl -s -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && return
    sleep 0.5
  done
  echo "the server did not start"; cat "$work/err.log"; exit 1
}

measure() {
  local label="$1"; shift
  start "$@"
  local password token
  password="$(grep 'program@gemba.local' "$work/out.log" | awk '{print $NF}' | head -1)"
  token="$(curl -s "http://127.0.0.1:$port/graphql" -H 'content-type: application/json' \
    -d "{\"query\":\"mutation(\$e: String!, \$p: String!) { login(input: {email: \$e, password: \$p}) { token } }\",\"variables\":{\"e\":\"program@gemba.local\",\"p\":\"$password\"}}" |
    sed -E 's/.*"token":"([^"]+)".*/\1/')"
  ab -q -k -n 500 -c "$connections" -p "$work/query.json" -T application/json \
    -H "Authorization: Bearer $token" "http://127.0.0.1:$port/graphql" >/dev/null
  local rates=()
  for _ in $(seq 1 "$runs"); do
    local out
    out="$(ab -q -k -n "$requests" -c "$connections" -p "$work/query.json" -T application/json \
      -H "Authorization: Bearer $token" "http://127.0.0.1:$port/graphql")"
    grep '^Non-2xx responses' <<<"$out" || true
    rates+=("$(awk '/^Requests per second/{print $4}' <<<"$out")")
  done
  local median
  median="$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')"
  echo "$label: runs ${rates[*]} req/s, median $median req/s"
  stop
}

echo "$(nproc) cores, ${DB:-sqlite}, $connections connections, $requests requests x $runs runs"
measure "caches off" GEMBA_AUTH_CACHE_TTL_MS=0 GEMBA_TREE_CACHE_TTL_MS=0
measure "caches on " GEMBA_AUTH_CACHE_TTL_MS=2000 GEMBA_TREE_CACHE_TTL_MS=2000
