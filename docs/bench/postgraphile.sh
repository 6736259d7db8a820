#!/usr/bin/env bash
# Request path beside PostGraphile 5 (PostgreSQL): one nested read of 50
# work items with their parent and unit, served by `gemba serve` and by
# PostGraphile 5 (`postgraphile/presets/amber`, schema `public`) on the same
# database, loaded with autocannon over CONNECTIONS (default 32) keep-alive
# connections for DURATION (default 15) seconds per run, after a WARMUP
# (default 5) seconds warm-up of each. RUNS (default 3) runs alternate the
# two servers (Gemba first in odd runs, PostGraphile first in even ones).
# Prints each run and the medians: requests per second, p50 and p99
# latency, non-2xx responses and errors, SQL statements per Gemba request
# (from its /metrics), CPU time per request of the server process and of
# every PostgreSQL process of the cluster (so nothing else should use it)
# and of autocannon (on the same cores; its start included), and the ratio
# Gemba ÷ PostGraphile of the req/s.
#
# The read: the first 50 items (by id) of one team. Gemba answers it as a
# program manager of the team's program (a user created for the run:
# authentication and the role's filter included); PostGraphile, which has no
# authorisation, as the database owner:
#   Gemba:        workItems(unit: <team>, first: 50) { nodes { key title state
#                   parent { key title } unit { key name } } }
#   PostGraphile: allWorkItems(first: 50, condition: {unitId: <team>}) { nodes {
#                   key title state workItemByParentId { key title }
#                   unitByUnitId { key name } } }
# Both must answer the same 50 items before any load.
#
#   bash docs/bench/postgraphile.sh [ITEMS]     # seeds ITEMS (default 1,000,000)
#   DB=gemba_syn REUSE=1 BIN=/path/to/gemba bash docs/bench/postgraphile.sh
# Without REUSE=1 the script seeds `gemba seed synthetic --items ITEMS` into
# a fresh database DB (default gemba_bench_postgraphile) and drops it at the
# end unless KEEP=1. With REUSE=1 it runs against DB as it is, except for
# its two users (pgbench-admin@ and pgbench-pm@gemba.local), which it
# replaces. BIN: the gemba binary (default: `cargo build --release`, then
# target/release/gemba; CARGO_TARGET_DIR is honoured). GEMBA_* variables
# reach `gemba serve` (e.g. GEMBA_AUTH_CACHE_TTL_MS=0; the script sets
# GEMBA_DB_MAX_CONNECTIONS to twice the cores unless given; or
# GEMBA_LOG=warn,gemba::sql=trace to log its statements); LOGS=DIR keeps
# both servers' output there. CALLGRIND=1 runs Gemba under valgrind's
# callgrind instead and prints the instructions its server executes per
# request (no load run, no PostGraphile figures; with LOGS=DIR its profile
# is kept as DIR/callgrind.out for callgrind_annotate).
# PostgreSQL: GEMBA_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# Needs Node 20 or later and npm: the first run installs PostGraphile and
# autocannon from docs/bench/postgraphile/package-lock.json (`npm ci`).
# PostGraphile 5 wants Node 22's Promise.withResolvers; polyfill.cjs adds
# it on Node 20 (preloaded with `node -r`, harmless on 22).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/docs/bench/postgraphile"
items="${1:-1000000}"
runs="${RUNS:-3}"
duration="${DURATION:-15}"
warmup="${WARMUP:-5}"
connections="${CONNECTIONS:-32}"
gport="${PORT:-18183}"
pport="${POSTGRAPHILE_PORT:-18184}"
pg="${GEMBA_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="${DB:-gemba_bench_postgraphile}"
url="${pg%/*}/$db"
for tool in node npm curl jq psql /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "needs $tool"; exit 1; }
done
if [ -n "${BIN:-}" ]; then
  bin="$BIN"
else
  cargo build --release -q -p gemba --manifest-path "$root/Cargo.toml"
  bin="${CARGO_TARGET_DIR:-$root/target}/release/gemba"
fi
if [ ! -x "$here/node_modules/.bin/postgraphile" ] || [ ! -x "$here/node_modules/.bin/autocannon" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
node_run=(node -r "$here/polyfill.cjs")
work="$(mktemp -d)"
gpid=""
ppid_=""
stop() {
  for p in "$gpid" "$ppid_"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  gpid=""
  ppid_=""
}
cleanup() {
  stop
  if [ -n "${LOGS:-}" ]; then mkdir -p "$LOGS" && cp "$work"/*.err "$work"/*.out "$LOGS"/ 2>/dev/null || true; fi
  if [ "${REUSE:-0}" != 1 ] && [ "${KEEP:-0}" != 1 ]; then
    psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ "${REUSE:-0}" != 1 ]; then
  psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  psql "$pg" -qc "CREATE DATABASE $db"
  GEMBA_DATABASE_URL="$url" GEMBA_LOG=warn "$bin" seed synthetic --items "$items"
  psql "$url" -qc "VACUUM ANALYZE"
fi

# The team: the first team (by id) of the first program with 50 items or
# more; the program manager is granted the program.
read -r program team team_id < <(psql "$url" -AtF ' ' -c "
  SELECT p.key, t.key, t.id FROM unit t JOIN unit p ON p.id = t.parent_id
  WHERE t.kind = 'TEAM' AND p.kind = 'PROGRAM'
    AND (SELECT count(*) FROM work_item w WHERE w.unit_id = t.id) >= 50
  ORDER BY t.id LIMIT 1") || true
[ -n "${team_id:-}" ] || { echo "no team with 50 items in $db"; exit 1; }
psql "$url" -qAtc "SELECT 'database $db: ' || (SELECT count(*) FROM work_item) || ' work items, ' || (SELECT count(*) FROM transition) || ' transitions, ' || (SELECT count(*) FROM unit) || ' units, ' || pg_size_pretty(pg_database_size(current_database()))"
echo "program $program, team $team; $(nproc) cores, $(node --version), $(psql "$url" -Atc 'SHOW server_version' | cut -d' ' -f1) PostgreSQL"

admin_email=pgbench-admin@gemba.local
pm_email=pgbench-pm@gemba.local
admin_password="$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')"
pm_password="$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')"
# Replaces this script's users from an earlier run (memberships cascade).
psql "$url" -qc "DELETE FROM \"user\" WHERE email IN ('$admin_email', '$pm_email')"
printf '%s\n' "$admin_password" |
  GEMBA_DATABASE_URL="$url" GEMBA_LOG=warn "$bin" user create --email "$admin_email" \
    --name "Benchmark admin" --password-stdin --admin >/dev/null

export GEMBA_JWT_SECRET="${GEMBA_JWT_SECRET:-bench-secret-bench-secret-bench-secret!}"
export GEMBA_BUDGET_POINTS="${GEMBA_BUDGET_POINTS:-0}"
# The pool sized for the machine, two connections a core (the server's
# default, 16, is for larger hosts; see docs/performance.md).
export GEMBA_DB_MAX_CONNECTIONS="${GEMBA_DB_MAX_CONNECTIONS:-$((2 * $(nproc)))}"
# Under callgrind a request takes ~50× longer, so the caches' periodic
# reloads (every 2 s) would fall on a few requests instead of thousands and
# make the count drift from run to run: keep them for the run.
if [ -n "${CALLGRIND:-}" ]; then
  export GEMBA_TREE_CACHE_TTL_MS="${GEMBA_TREE_CACHE_TTL_MS:-3600000}"
  export GEMBA_AUTH_CACHE_TTL_MS="${GEMBA_AUTH_CACHE_TTL_MS:-3600000}"
fi
(
  cd "$work"
  exec env GEMBA_DATABASE_URL="$url" GEMBA_BIND="127.0.0.1:$gport" GEMBA_LOG="${GEMBA_LOG:-warn}" \
    ${CALLGRIND:+valgrind --tool=callgrind "--callgrind-out-file=$work/callgrind.%p"} \
    "$bin" serve >"$work/gemba.out" 2>"$work/gemba.err"
) &
gpid=$!
(
  cd "$here"
  exec env GRAPHILE_ENV=production "${node_run[@]}" node_modules/postgraphile/dist/cli-run.js \
    -P postgraphile/presets/amber -c "$url" -s public -n 127.0.0.1 -p "$pport" \
    >"$work/postgraphile.out" 2>"$work/postgraphile.err"
) &
ppid_=$!
gemba="http://127.0.0.1:$gport/graphql"
postgraphile="http://127.0.0.1:$pport/graphql"

# Waits for Gemba to be ready, with its flow facts loaded (unless
# GEMBA_ANALYTICS=sql), and for PostGraphile to answer.
for i in $(seq 1 600); do
  if curl -sf -o /dev/null "http://127.0.0.1:$gport/readyz" 2>/dev/null &&
    { [ "${GEMBA_ANALYTICS:-memory}" = sql ] ||
      curl -s "http://127.0.0.1:$gport/metrics" | grep -qx 'gemba_analytics_loaded 1'; }; then
    break
  fi
  [ "$i" = 600 ] && { echo "gemba did not get ready"; tail -20 "$work/gemba.err"; exit 1; }
  sleep 0.5
done
for i in $(seq 1 120); do
  curl -s "$postgraphile" -H 'content-type: application/json' -d '{"query":"{ __typename }"}' 2>/dev/null |
    grep -q Query && break
  [ "$i" = 120 ] && { echo "PostGraphile did not start"; tail -20 "$work/postgraphile.err"; exit 1; }
  sleep 0.5
done

# Posts a GraphQL request to Gemba: query, variables (JSON), token.
gql() {
  curl -s "$gemba" -H 'content-type: application/json' ${3:+-H "Authorization: Bearer $3"} \
    -d "$(jq -nc --arg q "$1" --argjson v "$2" '{query: $q, variables: $v}')"
}
login() {
  gql 'mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token } }' \
    "$(jq -nc --arg e "$1" --arg p "$2" '{e: $e, p: $p}')" | jq -er '.data.login.token'
}
admin_token="$(login "$admin_email" "$admin_password")"
pm_id="$(gql 'mutation($i: CreateUserInput!) { createUser(input: $i) { user { id } } }' \
  "$(jq -nc --arg e "$pm_email" --arg p "$pm_password" '{i: {email: $e, name: "Benchmark program manager", password: $p}}')" \
  "$admin_token" | jq -er '.data.createUser.user.id')"
program_id="$(gql 'query($k: String!) { unit(key: $k) { id } }' "$(jq -nc --arg k "$program" '{k: $k}')" "$admin_token" |
  jq -er '.data.unit.id')"
team_gid="$(gql 'query($k: String!) { unit(key: $k) { id } }' "$(jq -nc --arg k "$team" '{k: $k}')" "$admin_token" |
  jq -er '.data.unit.id')"
gql 'mutation($u: ID!, $p: ID!) { grantMembership(input: {user: $u, unit: $p, role: PROGRAM_MANAGER}) { membership { id } } }' \
  "$(jq -nc --arg u "$pm_id" --arg p "$program_id" '{u: $u, p: $p}')" "$admin_token" |
  jq -e '.data.grantMembership.membership.id' >/dev/null
token="$(login "$pm_email" "$pm_password")"

jq -nc --arg u "$team_gid" '{query: "query($u: ID!) { workItems(unit: $u, first: 50) { nodes { key title state parent { key title } unit { key name } } } }", variables: {u: $u}}' \
  >"$work/gemba.json"
jq -nc --arg u "$team_id" '{query: "query($u: BigInt!) { allWorkItems(first: 50, condition: {unitId: $u}) { nodes { key title state workItemByParentId { key title } unitByUnitId { key name } } } }", variables: {u: $u}}' \
  >"$work/postgraphile.json"

# The same 50 items, parents and units from both, before any load.
curl -s "$gemba" -H 'content-type: application/json' -H "Authorization: Bearer $token" -d @"$work/gemba.json" |
  jq -c '[.data.workItems.nodes[] | [.key, .title, .state, .parent.key, .parent.title, .unit.key, .unit.name]]' >"$work/gemba.answer"
curl -s "$postgraphile" -H 'content-type: application/json' -d @"$work/postgraphile.json" |
  jq -c '[.data.allWorkItems.nodes[] | [.key, .title, .state, .workItemByParentId.key, .workItemByParentId.title, .unitByUnitId.key, .unitByUnitId.name]]' >"$work/postgraphile.answer"
n="$(jq length "$work/gemba.answer")"
parents="$(jq '[.[] | select(.[3] != null)] | length' "$work/gemba.answer")"
if [ "$n" != 50 ] || ! cmp -s "$work/gemba.answer" "$work/postgraphile.answer"; then
  echo "the answers differ (Gemba: $n items)"
  diff <(jq -c '.[]' "$work/gemba.answer") <(jq -c '.[]' "$work/postgraphile.answer") | head -10
  exit 1
fi
echo "both answer the same 50 items ($parents with a parent)"

# CALLGRIND=1: instructions Gemba's server executes per request, counted by
# callgrind (repeatable, whatever else the machine does): 300 requests to
# warm up, then 1,000 counted, over 8 connections.
if [ -n "${CALLGRIND:-}" ]; then
  counted() {
    "${node_run[@]}" "$here/node_modules/.bin/autocannon" -c 8 -a "$1" -m POST \
      -H 'content-type: application/json' -H "Authorization: Bearer $token" \
      -i "$work/gemba.json" --json "$gemba" 2>/dev/null
  }
  counted 300 >/dev/null
  callgrind_control -z "$gpid" >/dev/null 2>&1
  counted 1000 | jq -e '.non2xx == 0 and .errors == 0' >/dev/null || { echo "requests failed"; exit 1; }
  callgrind_control -d "$gpid" >/dev/null 2>&1
  sleep 1
  awk '/^(summary|totals):/ {printf "Gemba server: %.0f instructions per request (1,000 requests)\n", $2 / 1000; exit}' \
    "$(ls -t "$work"/callgrind.*.1 | head -1)"
  if [ -n "${LOGS:-}" ]; then mkdir -p "$LOGS" && cp "$(ls -t "$work"/callgrind.*.1 | head -1)" "$LOGS/callgrind.out"; fi
  exit 0
fi
echo "$connections connections, ${warmup} s warm-up, $runs runs of ${duration} s; Gemba's pool $GEMBA_DB_MAX_CONNECTIONS connections"

# CPU time (clock ticks) of processes: the server's own, and every
# PostgreSQL process's (the other server is idle meanwhile).
ticks() { for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done | awk '{s += $14 + $15} END {print s + 0}'; }
# PostgreSQL's processes come and go (parallel workers, a pool's recycled
# connections), so its CPU is summed per process: what each process alive
# at the end spent since the start (all of it, for one started meanwhile).
# A process that ended meanwhile is missed, never counted negative.
pg_snapshot() {
  for p in $(pgrep -x postgres || true); do
    awk -v p="$p" '{print p, $14 + $15}' "/proc/$p/stat" 2>/dev/null || true
  done
}
pg_ticks_since() {
  pg_snapshot | awk 'NR == FNR {start[$1] = $2; next} {s += $2 - (($1 in start) ? start[$1] : 0)} END {print s + 0}' "$1" -
}
statements() { curl -s "http://127.0.0.1:$gport/metrics" | awk '/^gemba_db_statements_total /{print $2}'; }
hz="$(getconf CLK_TCK)"

# Loads one server (label, URL, body file, seconds, extra autocannon
# arguments) and prints: label, req/s, p50 and p99 latency (ms), non-2xx
# responses, errors and timeouts, SQL statements per request (Gemba only),
# CPU ms per request of the server, of PostgreSQL and of autocannon.
load() {
  local label="$1" target="$2" body="$3" seconds="$4"; shift 4
  local pid=$ppid_ st0=0 st1=0 c0 c1 db_ticks
  [ "$label" = gemba ] && pid=$gpid && st0="$(statements)"
  c0="$(ticks "$pid")"; pg_snapshot >"$work/pg.start"
  /usr/bin/time -f '%U %S' -o "$work/client.time" \
    "${node_run[@]}" "$here/node_modules/.bin/autocannon" -c "$connections" -d "$seconds" -m POST \
    -H 'content-type: application/json' "$@" -i "$body" --json "$target" 2>/dev/null >"$work/last.json"
  c1="$(ticks "$pid")"; db_ticks="$(pg_ticks_since "$work/pg.start")"
  [ "$label" = gemba ] && st1="$(statements)"
  jq -r --arg name "$label" --argjson st "$((st1 - st0))" --argjson cpu "$((c1 - c0))" \
    --argjson db "$db_ticks" --argjson hz "$hz" \
    --argjson client "$(awk '{print ($1 + $2) * 1000}' "$work/client.time")" '
    def per(x): if .requests.total > 0 then (x / .requests.total * 100 | round / 100) else "-" end;
    [$name, .requests.average, .latency.p50, .latency.p99, .non2xx, .errors + .timeouts,
     (if $name == "gemba" then per($st) else "-" end),
     per($cpu * 1000 / $hz), per($db * 1000 / $hz), per($client)] | @tsv' "$work/last.json"
}
run_gemba() { load gemba "$gemba" "$work/gemba.json" "$1" -H "Authorization: Bearer $token"; }
run_postgraphile() { load postgraphile "$postgraphile" "$work/postgraphile.json" "$1"; }

run_gemba "$warmup" >/dev/null
run_postgraphile "$warmup" >/dev/null
printf 'run\tserver\treq/s\tp50_ms\tp99_ms\tnon2xx\terrors\tstatements/req\tserver_cpu_ms/req\tpostgres_cpu_ms/req\tautocannon_cpu_ms/req\n'
for r in $(seq 1 "$runs"); do
  if [ $((r % 2)) = 1 ]; then order="gemba postgraphile"; else order="postgraphile gemba"; fi
  for s in $order; do
    line="$("run_$s" "$duration")"
    printf '%s\t%s\n' "$r" "$line"
    printf '%s\n' "$line" >>"$work/results"
  done
done

# Medians per server, and the ratio of the medians and of each run.
median() { sort -n | awk '{a[NR]=$1} END{print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
for s in gemba postgraphile; do
  printf 'median\t%s' "$s"
  for col in 2 3 4 5 6 7 8 9 10; do
    if [ "$s" = postgraphile ] && [ "$col" = 7 ]; then printf '\t-'; continue; fi
    printf '\t%s' "$(awk -F'\t' -v s="$s" -v c="$col" '$1 == s {print $c}' "$work/results" | median)"
  done
  printf '\n'
done
g="$(awk -F'\t' '$1 == "gemba" {print $2}' "$work/results" | median)"
p="$(awk -F'\t' '$1 == "postgraphile" {print $2}' "$work/results" | median)"
ratios="$(paste <(awk -F'\t' '$1 == "gemba" {print $2}' "$work/results") \
  <(awk -F'\t' '$1 == "postgraphile" {print $2}' "$work/results") | awk '{printf "%s%.2f", (NR > 1 ? ", " : ""), $1 / $2}')"
awk -v g="$g" -v p="$p" -v r="$ratios" 'BEGIN { printf "Gemba / PostGraphile: %.2f (medians; runs %s); target >= 3\n", g / p, r }'
