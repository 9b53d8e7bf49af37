#!/usr/bin/env bash
# Approval-to-contained latency, invoke latency under concurrent runs and
# a bulk of approvals at once, on SQLite and (when CORDON_TEST_POSTGRES_URL
# is set) on PostgreSQL. Extra arguments go to the driver (--sequential,
# --concurrent, --bulk).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --example bench_runs
args=("$@")
if [ -n "${CORDON_TEST_POSTGRES_URL:-}" ]; then
  args+=(--postgres "$CORDON_TEST_POSTGRES_URL")
fi
exec ./target/release/examples/bench_runs "${args[@]}"
