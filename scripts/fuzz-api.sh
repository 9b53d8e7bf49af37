#!/usr/bin/env bash
# Fuzzes Cordon's HTTP surface from its own OpenAPI document.
#
# Builds `cordon`, starts `cordon sandbox` on loopback (a simulated tenant,
# a fresh SQLite store), and runs schemathesis against the document the
# server serves at /api/v1/openapi.json, with the sandbox's API token. The
# checks: no 5xx answer, every status code documented, and every answer's
# content type, headers and body as documented. The sandbox is stopped at
# the end and the script exits non-zero on any finding.
#
# Two passes: every operation but proposals, then POST
# /api/v1/containments with the GET its answer links to. The sandbox's
# per-token rate limit is lifted through its environment
# (CORDON_API__RATE_LIMIT_*), so that proposals reach validation and
# policy instead of 429; the integration tests cover the 429 itself.
#
# Usage: scripts/fuzz-api.sh
# Environment (all optional):
#   FUZZ_MAX_EXAMPLES  test cases per operation and phase (default 100)
#   FUZZ_MAX_TIME      seconds the first pass may take (default 120)
#   FUZZ_PROPOSAL_TIME seconds the proposals pass may take (default 240)
#   FUZZ_SEED          seed, to replay a run (default: a random one)
#   FUZZ_PORT          loopback port of the sandbox (default: any free one)
#   FUZZ_OUT           reports and the sandbox log (default target/fuzz-api)
set -euo pipefail
cd "$(dirname "$0")/.."

max_examples=${FUZZ_MAX_EXAMPLES:-100}
max_time=${FUZZ_MAX_TIME:-120}
proposal_time=${FUZZ_PROPOSAL_TIME:-240}
seed=${FUZZ_SEED:-$RANDOM$RANDOM}
port=${FUZZ_PORT:-0}
out=${FUZZ_OUT:-target/fuzz-api}

if ! command -v st >/dev/null; then
  echo "fuzz-api: the schemathesis command 'st' is not installed" >&2
  exit 2
fi

cargo build --quiet --bin cordon
mkdir -p "$out"
out=$(cd "$out" && pwd)
log="$out/sandbox.log"
rm -f "$log" "$out"/*.txt "$out"/*.ndjson "$out"/*.junit.xml

# The sandbox logs to stdout; NO_COLOR keeps the log greppable.
NO_COLOR=1 CORDON_API__RATE_LIMIT_PER_MINUTE=1000000 CORDON_API__RATE_LIMIT_BURST=1000000 \
  target/debug/cordon sandbox --bind "127.0.0.1:$port" >"$log" 2>&1 &
sandbox=$!

stop_sandbox() {
  if kill -0 "$sandbox" 2>/dev/null; then
    kill -INT "$sandbox" 2>/dev/null || true
    wait "$sandbox" 2>/dev/null || true
  fi
}
trap stop_sandbox EXIT

# The banner names the address bound and the API token.
base=""
for _ in $(seq 1 100); do
  base=$(sed -n 's|.*automation API *\(http://127\.0\.0\.1:[0-9]*\)/.*|\1|p' "$log")
  [ -n "$base" ] && break
  if ! kill -0 "$sandbox" 2>/dev/null; then
    echo "fuzz-api: the sandbox did not start; see $log" >&2
    exit 2
  fi
  sleep 0.2
done
if [ -z "$base" ]; then
  echo "fuzz-api: the sandbox never printed its address; see $log" >&2
  exit 2
fi
token=$(sed -n 's|.*automation API .*(bearer \([^)]*\)).*|\1|p' "$log")
echo "fuzz-api: sandbox at $base, seed $seed, report in $out"

# One pass of schemathesis: a name, a time budget, then the options that
# select the operations.
fuzz() {
  local name=$1 budget=$2
  shift 2
  (
    cd "$out"
    st run "$base/api/v1/openapi.json" \
      --header "Authorization: Bearer $token" \
      --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
      --max-examples "$max_examples" \
      --max-time "$budget" \
      --seed "$seed" \
      --workers 1 \
      --no-color \
      --generation-database none \
      --report junit,ndjson \
      --report-junit-path "$name.junit.xml" \
      --report-ndjson-path "$name.ndjson" \
      --report-dir "$out" \
      "$@"
  ) | tee "$out/$name.txt"
  return "${PIPESTATUS[0]}"
}

status=0
fuzz everything-but-proposals "$max_time" --exclude-operation-id propose_containment || status=1
# The answer to a proposal links to the request it names, so the stateful
# phase follows it to GET /api/v1/containments/{id}.
fuzz proposals "$proposal_time" \
  --include-operation-id propose_containment \
  --include-operation-id show_containment || status=1

# A panic in a handler closes its connection; schemathesis sees a network
# error, and the log says where.
if grep -q "panicked at" "$log"; then
  echo "fuzz-api: the server panicked:" >&2
  grep "panicked at" "$log" | sort | uniq -c >&2
  status=1
fi

stop_sandbox
if [ "$status" -ne 0 ]; then
  echo "fuzz-api: findings; see $out (seed $seed)" >&2
else
  echo "fuzz-api: no findings (seed $seed)"
fi
exit "$status"
