#!/usr/bin/env bash
# Idle WebSockets over N local nodes: PER_NODE sockets to each node, one
# harness process per node (a process here may hold 20,000 files), all at
# once; one JSON report per node in OUT (server_bytes_per_added_connection:
# the node's RSS growth over the second half of its sockets, per socket).
# Usage: scripts/bench-connections.sh N PER_NODE OUT
set -euo pipefail
n=${1:?N nodes}; per=${2:?sockets per node}; out=${3:?output dir}; mkdir -p "$out"
export TANDEM_RATE_LIMITS=off TANDEM_LOG=warn TANDEM_NAMESPACE=conn$RANDOM
FRESH=1 OUT="$out/logs" scripts/cluster.sh "$n" 18400 > "$out/cluster.txt" 2>&1 &
cluster=$!
trap 'kill -TERM $cluster 2>/dev/null; wait $cluster 2>/dev/null || true' EXIT
for i in $(seq 0 $((n - 1))); do
  for _ in $(seq 1 150); do curl -fs "http://127.0.0.1:$((18400 + i))/ready" >/dev/null && break; sleep 0.2; done
done
pids=()
for i in $(seq 0 $((n - 1))); do
  target/release/tandem-stress --target "http://127.0.0.1:$((18400 + i))" --scenario connections \
    --duration 10 --concurrency "$per" --json "$out/node-$i.json" > "$out/node-$i.txt" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"
