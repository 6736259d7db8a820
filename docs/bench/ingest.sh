#!/usr/bin/env bash
# Ingest benchmark: generate N events (default 1,000,000) and time
# `gemba import` (release build) into a fresh SQLite file and a fresh
# PostgreSQL database, RUNS times each (default 3); prints events/s and peak
# RSS per run, and the medians.
#   bash docs/bench/ingest.sh [N]
# PostgreSQL: GEMBA_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# The binary is built under CARGO_TARGET_DIR when set (default ./target).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
n="${1:-1000000}"
runs="${RUNS:-3}"
pg="${GEMBA_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# BIN: a gemba binary to measure instead of building this checkout's.
if [ -n "${BIN:-}" ]; then
  bin="$BIN"
else
  cargo build --release -q -p gemba --manifest-path "$root/Cargo.toml"
  bin="${CARGO_TARGET_DIR:-$root/target}/release/gemba"
fi
python3 "$root/docs/bench/gen_events.py" "$n" > "$work/events.ndjson"
echo "events: $(wc -l < "$work/events.ndjson") ($(du -h "$work/events.ndjson" | cut -f1)); $runs runs per database"

measure() {
  local label="$1" url="$2"
  GEMBA_DATABASE_URL="$url" GEMBA_LOG=warn "$bin" migrate
  GEMBA_DATABASE_URL="$url" GEMBA_LOG=warn /usr/bin/time -f "%e %M" -o "$work/time" \
    "$bin" import "$work/events.ndjson" > "$work/out" 2>/dev/null || true
  read -r secs kb < "$work/time"
  echo "$label $secs $kb" >> "$work/runs"
  python3 - "$label" "$n" "$secs" "$kb" "$(cat "$work/out")" <<'PY'
import sys
label, n, secs, kb, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
print(f"{label}: {n / secs:,.0f} events/s ({secs:.1f} s), peak RSS {kb / 1024:.0f} MB; {out.strip()}")
PY
}

for i in $(seq "$runs"); do
  rm -f "$work/bench.db"
  measure sqlite "sqlite://$work/bench.db?mode=rwc"
  db="gemba_bench_$$_$i"
  psql "$pg" -qc "CREATE DATABASE $db"
  measure postgres "${pg%/*}/$db"
  psql "$pg" -qc "DROP DATABASE $db WITH (FORCE)"
done
python3 - "$n" "$work/runs" <<'PY'
import statistics, sys
n, path = int(sys.argv[1]), sys.argv[2]
rows = [line.split() for line in open(path)]
for label in ("sqlite", "postgres"):
    secs = [float(r[1]) for r in rows if r[0] == label]
    kb = [int(r[2]) for r in rows if r[0] == label]
    print(f"median {label}: {n / statistics.median(secs):,.0f} events/s over {len(secs)} runs, peak RSS max {max(kb) / 1024:.0f} MB")
PY
