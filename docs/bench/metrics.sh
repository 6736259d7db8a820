#!/usr/bin/env bash
# Metrics benchmark (PostgreSQL): generate the synthetic organisation
# (`gemba seed synthetic`, default 10 x 10 x 10 units and 1,000,000 items over
# 2 years) into a fresh database, then run `gemba bench metrics`: median and
# p95 of RUNS (default 20) runs of flowMetrics and deliveryMetrics at
# organisation, portfolio, program and team level for a 90-day and a 2-year
# window, beside the one-statement SQL floor. Also prints the server-side
# sizes of the tables involved.
#   bash docs/bench/metrics.sh [ITEMS]
# KEEP=1 keeps the database (DB, default gemba_bench_metrics) for further runs, REUSE=1
# runs against the kept one. ANALYTICS (default "sql memory") lists where
# flow metrics are computed, one benchmark run each (GEMBA_ANALYTICS); the
# memory run first loads the facts and logs the load time and size.
# Each row of the performance targets carries its target and whether it is
# met (the targets are set for 1M items). CARGO_TARGET_DIR is honoured.
# PostgreSQL: GEMBA_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
items="${1:-1000000}"
runs="${RUNS:-20}"
pg="${GEMBA_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="${DB:-gemba_bench_metrics}"
url="${pg%/*}/$db"
# BIN: a gemba binary to measure instead of building this checkout's.
if [ -n "${BIN:-}" ]; then
  bin="$BIN"
else
  cargo build --release -q -p gemba --manifest-path "$root/Cargo.toml"
  bin="${CARGO_TARGET_DIR:-$root/target}/release/gemba"
fi
if [ "${REUSE:-0}" != 1 ]; then
  psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  psql "$pg" -qc "CREATE DATABASE $db"
  GEMBA_DATABASE_URL="$url" GEMBA_LOG=warn /usr/bin/time -f "seed: %e s, peak RSS %M KB" \
    "$bin" seed synthetic --items "$items"
  # Measure the steady state of a database in use: visibility map and
  # statistics current, as autovacuum leaves them.
  psql "$url" -qc "VACUUM ANALYZE"
fi
psql "$url" -Atc "SELECT 'rows: work_item ' || (SELECT count(*) FROM work_item) || ', transition ' || (SELECT count(*) FROM transition) || ', flow_completion ' || (SELECT count(*) FROM flow_completion) || ', flow_wip ' || (SELECT count(*) FROM flow_wip) || ', flow_state ' || (SELECT count(*) FROM flow_state) || ', deployment ' || (SELECT count(*) FROM deployment) || '; database ' || pg_size_pretty(pg_database_size(current_database()))"
for mode in ${ANALYTICS:-sql memory}; do
  echo "## GEMBA_ANALYTICS=$mode"
  GEMBA_DATABASE_URL="$url" GEMBA_LOG=warn GEMBA_ANALYTICS="$mode" \
    /usr/bin/time -f "bench ($mode): peak RSS %M KB" "$bin" bench metrics --runs "$runs"
done
if [ "${KEEP:-0}" != 1 ]; then
  psql "$pg" -qc "DROP DATABASE $db WITH (FORCE)"
fi
