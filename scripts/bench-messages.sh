#!/usr/bin/env bash
# Throughput, latency and memory of POST /api/messages with real token
# checks: builds the release binary and the load driver, then runs it.
# Extra arguments go to the driver (--seconds, --connections, --rate).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin cordon --example load_messages
exec ./target/release/examples/load_messages --server target/release/cordon "$@"
