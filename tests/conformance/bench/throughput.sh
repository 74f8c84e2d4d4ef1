#!/usr/bin/env bash
# Throughput at Dataverse's cost (issue 17 item 5), printed side by side, asserted never:
# creates by the component, by dynamics-web-api's executeBatch in turn and in Promise.all groups,
# extraction of 5 tables in parallel against one after another, and the 429s the emulator
# answered, with the emulator's cost model on (host-harness/benches/throughput.rs).
#
#   tests/conformance/bench/throughput.sh            quick: 10,000 creates, 5 x 10,000 rows
#   tests/conformance/bench/throughput.sh --full     100,000 creates, 5 x 100,000 rows
#   tests/conformance/bench/throughput.sh --loopback also the loopback benchmarks (read_all:
#                                                    reading against a plain HTTP fetch of the
#                                                    same pages; bulk)
#
# Knobs (environment): BENCH_CREATES, BENCH_ROWS, BENCH_LATENCY_MS (100), BENCH_PER_RECORD_MS
# (1), BENCH_GROUP (Promise.all group, 10), BENCH_DOP_HINT, BENCH_PARALLEL (5), BENCH_MEMORY_MIB
# (the extracting CLI's --memory-limit-mib), BENCH_ONLY
# (component,node-seq,node-par,extract). The Node rows need `npm ci` in tests/conformance.
set -euo pipefail
cd "$(dirname "$0")/../../.."

loopback=0
for arg in "$@"; do
  case "$arg" in
    --full) export BENCH_CREATES="${BENCH_CREATES:-100000}" BENCH_ROWS="${BENCH_ROWS:-100000}" ;;
    --loopback) loopback=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

if [ ! -d tests/conformance/node_modules/dynamics-web-api ]; then
  (cd tests/conformance && npm ci --silent) || echo "npm ci failed: the dynamics-web-api rows are skipped" >&2
fi

cargo bench -q -p host-harness --bench throughput
if [ "$loopback" = 1 ]; then
  cargo bench -q -p host-harness --bench read_all
  cargo bench -q -p host-harness --bench bulk
fi
