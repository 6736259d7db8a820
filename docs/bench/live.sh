#!/usr/bin/env bash
# Subscription benchmark: starts `gemba serve --demo` (release build) on a
# fresh database, then `gemba bench live` opens SUBSCRIBERS (default 5000)
# WebSocket connections, each subscribed to workItemEvents of the demo's
# payments-checkout program as its program manager, while a team member
# moves stories at RATE moves/s (default 5) for SECONDS (default 30). Prints
# event-to-delivery latency (p50/p95/p99/max), deliveries against the
# expected count, and the server's resident memory (now and peak).
# FLOW_METRICS=1: the subscribers are the executive's, on flowMetricsUpdates
# (30 days) of the organisation, the payments portfolio and team-atlas, a
# third each; latency runs from each move's response to the first message
# computed after it (the coalescing of live metrics included).
#   bash docs/bench/live.sh            # SQLite in a temporary directory
#   DB=postgres bash docs/bench/live.sh
#   FLOW_METRICS=1 SUBSCRIBERS=1000 bash docs/bench/live.sh
# INGEST_RATE=n: also posts n events a second to /ingest while the moves
# run (new team-atlas stories and their transitions, a batch a second).
# PostgreSQL: GEMBA_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
subscribers="${SUBSCRIBERS:-5000}"
rate="${RATE:-5}"
seconds="${SECONDS_OF_MOVES:-30}"
port="${PORT:-18181}"
# BIN: a gemba binary to measure instead of building this checkout's.
if [ -n "${BIN:-}" ]; then
  bin="$BIN"
else
  cargo build --release -q -p gemba --manifest-path "$root/Cargo.toml"
  bin="${CARGO_TARGET_DIR:-$root/target}/release/gemba"
fi
# Each side holds one descriptor per connection.
ulimit -n "$(ulimit -Hn)"
work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ "${DB:-sqlite}" = postgres ]; then psql "$pg" -qc "DROP DATABASE IF EXISTS gemba_bench_live WITH (FORCE)" >/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT
if [ "${DB:-sqlite}" = postgres ]; then
  pg="${GEMBA_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  psql "$pg" -qc "DROP DATABASE IF EXISTS gemba_bench_live WITH (FORCE)"
  psql "$pg" -qc "CREATE DATABASE gemba_bench_live"
  export GEMBA_DATABASE_URL="${pg%/*}/gemba_bench_live"
  export GEMBA_JWT_SECRET="${GEMBA_JWT_SECRET:-bench-secret-bench-secret-bench-secret!}"
fi
(
  cd "$work"
  GEMBA_BIND="127.0.0.1:$port" GEMBA_LOG=warn exec "$bin" serve --demo >"$work/out.log" 2>"$work/err.log"
) &
pid=$!
for _ in $(seq 1 120); do
  grep -q "http://127.0.0.1:$port/graphql" "$work/out.log" 2>/dev/null && break
  sleep 0.5
done
password="$(grep 'team@gemba.local' "$work/out.log" | awk '{print $NF}' || true)"
[ -n "$password" ] || { echo "the server did not start"; cat "$work/err.log"; exit 1; }
echo "server pid $pid ($(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB), ${DB:-sqlite}"
GEMBA_LOG=warn "$bin" bench live --url "http://127.0.0.1:$port/graphql" --password "$password" \
  --subscribers "$subscribers" --rate "$rate" --seconds "$seconds" --server-pid "$pid" \
  ${FLOW_METRICS:+--flow-metrics} --ingest-rate "${INGEST_RATE:-0}"
grep -i "warn\|error" "$work/err.log" | sort | uniq -c | sort -rn | head -5 || true
