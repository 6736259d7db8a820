#!/usr/bin/env bash
# A longer fuzz run than CI's: FUZZ_CASES cases (default 20000) per database,
# seeded by FUZZ_SEED (default: the suite's own), against an optimised build.
# PostgreSQL joins when GEMBA_TEST_POSTGRES_URL is set, as for the tests.
#   FUZZ_CASES=50000 FUZZ_SEED=7 bash docs/bench/fuzz.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
export FUZZ_CASES="${FUZZ_CASES:-20000}"
cd "$root"
cargo test --release -p gemba-tests --test api fuzz -- --nocapture
