#!/usr/bin/env bash
# The cluster figures of BENCHMARKS.md: starts N local nodes on a fresh
# database (scripts/cluster.sh), runs health, flash-sale, orders, chat-group
# and chat-direct against all of them (requests round-robin, socket i on node
# i mod N), writes one JSON report per scenario into OUT and stops the nodes.
# Usage: scripts/bench-cluster.sh N OUT   (release build first: cargo build --release)
set -euo pipefail
n=${1:?N nodes}; out=${2:?output dir}; mkdir -p "$out"
export TANDEM_RATE_LIMITS=off TANDEM_BOOTSTRAP_ADMIN=root:rootpass123 TANDEM_MOCKPAY_SECRET=benchsecret \
       TANDEM_LOG=warn TANDEM_NAMESPACE=bench$RANDOM
FRESH=1 OUT="$out/logs" scripts/cluster.sh "$n" 18400 > "$out/cluster.txt" 2>&1 &
cluster=$!
trap 'kill -TERM $cluster 2>/dev/null; wait $cluster 2>/dev/null || true' EXIT
for i in $(seq 0 $((n - 1))); do
  for _ in $(seq 1 150); do curl -fs "http://127.0.0.1:$((18400 + i))/ready" >/dev/null && break; sleep 0.2; done
done
targets=""; for i in $(seq 0 $((n - 1))); do targets="$targets${targets:+,}http://127.0.0.1:$((18400 + i))"; done
s=(target/release/tandem-stress --target "$targets")
admin=(--admin root:rootpass123 --mockpay-secret benchsecret)
"${s[@]}" --scenario health      --duration 10 --concurrency 64  --json "$out/health.json"
"${s[@]}" --scenario flash-sale  --concurrency 256 --stock 1000 --buyers 20000 "${admin[@]}" --json "$out/flash-sale.json"
"${s[@]}" --scenario orders      --duration 10 --concurrency 256 "${admin[@]}" --json "$out/orders.json"
"${s[@]}" --scenario chat-group  --duration 10 --concurrency 64 --group-size 500 --json "$out/chat-group.json"
"${s[@]}" --scenario chat-direct --duration 10 --concurrency 128 --json "$out/chat-direct.json"
